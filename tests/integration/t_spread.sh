# A hundred short-lived curl processes spread over the endpoints as one
# long-lived process would: every balancer starts at a random position.
. "$(dirname "$0")/lib.sh"
shims curl

port=$(free_port)
start_backends "$port"
for lb in p2c round_robin; do
    cat > "$TMP/$lb.ini" <<INI
[service:orders]
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = $lb
INI
    for i in $(seq 1 100); do
        MESHIM_CONFIG=$TMP/$lb.ini shimmed curl -sS --max-time 5 "http://orders:$port/who" >> "$TMP/$lb.out" \
            || fail "$lb: curl $i failed"
    done
    # Expected 33 each; 15 is about 4 standard deviations below.
    assert_spread "$TMP/$lb.out" 15 "100 curl processes, lb = $lb"
done
