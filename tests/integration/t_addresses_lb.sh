# `addresses`: an IP:port the app dials directly is meshed too. Weights and
# every lb policy: all endpoints are used, in the configured proportions.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_backends "$port"
cat > "$TMP/mesh.ini" <<INI
[service:orders]
addresses = 127.0.0.10:$port
endpoints = 127.0.0.2:$port weight=3, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
[service:users]
endpoints = 127.0.0.2, 127.0.0.3, 127.0.0.4
lb = least_conn
INI
export MESHIM_CONFIG=$TMP/mesh.ini

# Nothing listens on 127.0.0.10: only the mesh can answer.
shimmed python3 - "$port" > "$TMP/addr.out" <<'PY' || fail "addresses"
import sys, urllib.request
for _ in range(50):
    print(urllib.request.urlopen(f"http://127.0.0.10:{sys.argv[1]}/who", timeout=5).read().decode().strip())
PY
[ "$(count backend-2 "$TMP/addr.out")" -eq 30 ] && [ "$(count backend-3 "$TMP/addr.out")" -eq 10 ] \
    && [ "$(count backend-4 "$TMP/addr.out")" -eq 10 ] \
    || fail "weights 3:1:1 over 50: $(sort "$TMP/addr.out" | uniq -c | tr '\n' ' ')"
ok "addresses = 127.0.0.10:$port meshed; round robin weights 3:1:1 exact: 30/10/10"

# Port-less endpoints take the port the application asked for.
for lb in least_conn random p2c; do
    sed -i "s/^lb = .*/lb = $lb/" "$TMP/mesh.ini"
    shimmed python3 - "$port" > "$TMP/$lb.out" <<'PY' || fail "$lb"
import sys, urllib.request
for _ in range(60):
    print(urllib.request.urlopen(f"http://users:{sys.argv[1]}/who", timeout=5).read().decode().strip())
PY
    [ "$(grep -c '^backend-' "$TMP/$lb.out")" -eq 60 ] || fail "lb = $lb: $(grep -c . "$TMP/$lb.out") of 60"
    if [ "$lb" = p2c ]; then
        # One process, one request at a time: peak-EWMA p2c sends most of
        # them to the endpoints that answered fastest (as Linkerd's does);
        # the spread over many processes is t_spread's.
        [ "$(sort -u "$TMP/$lb.out" | wc -l)" -ge 2 ] || fail "lb = p2c used one endpoint only"
        ok "lb = p2c, port-less endpoints, 60 requests: $(sort "$TMP/$lb.out" | uniq -c | tr -s ' ' | tr '\n' ' ')"
    else
        assert_spread "$TMP/$lb.out" 5 "lb = $lb, port-less endpoints, 60 requests"
    fi
done
