# nginx as a client: proxy_pass http://orders:PORT resolves through the shim
# at start-up and every upstream connection is balanced.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
front=$(free_port)
start_backends "$port"
# round_robin: nginx makes its upstream connects one after another here, and
# the default (peak-EWMA p2c) would favour whichever answered fastest.
cat > "$TMP/mesh.ini" <<INI
[service:orders]
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
INI
MESHIM_CONFIG="$TMP/mesh.ini" start_nginx_proxy "$front" "orders:$port" 2
for i in $(seq 1 30); do
    curl -sS --max-time 5 "http://127.0.0.1:$front/who" >> "$TMP/nginx.out" || fail "request $i through nginx failed: $(tail -3 "$TMP/nginx/error.log")"
done
[ "$(wc -l < "$TMP/nginx.out")" -eq 30 ] || fail "nginx: $(wc -l < "$TMP/nginx.out") of 30 answers"
assert_spread "$TMP/nginx.out" 3 "nginx proxy_pass http://orders, 30 requests"
