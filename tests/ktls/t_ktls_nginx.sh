# Kernel TLS with nginx at both ends (inside user-mode Linux: make
# test-ktls): a meshed nginx serving files (sendfile, edge-triggered epoll)
# on a strict port, reached by meshed curl and wrk; and a meshed nginx as
# the client (proxy_pass to the service by name, pooled keep-alive
# upstream connections). Every connection goes on in kernel TLS at both
# ends; bodies arrive whole.
. "$(dirname "$0")/lib.sh"
command -v nginx > /dev/null && command -v wrk > /dev/null || fail "needs nginx and wrk"

port=$(free_port)
front=$((port + 1))
mkdir -p "$TMP/www" "$TMP/srv" "$TMP/proxy"
head -c 3000000 /dev/urandom > "$TMP/www/big"
echo small > "$TMP/www/small"

nginx_conf() {    # nginx_conf DIR SERVER_BLOCK
    cat > "$1/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $1/body;
    proxy_temp_path $1/ptmp;
    $2
}
CONF
}
nginx_conf "$TMP/srv" "server { listen 127.0.0.2:$port; root $TMP/www; keepalive_requests 100000; }"
nginx_conf "$TMP/proxy" "upstream orders { server orders:$port; keepalive 8; }
    server { listen 127.0.0.1:$front;
             location / { proxy_pass http://orders; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
sed -i "s|^log_level = info|log_level = warn\naccess_log = $TMP/server-access.log|" "$TMP/server.ini"
tls_ini "$TMP/client.ini" web "${GUEST_SLOW[@]}" "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls"
sed -i "s|^log_level = info|log_level = warn\naccess_log = $TMP/client-access.log|" "$TMP/client.ini"

MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    nginx -p "$TMP/srv" -c "$TMP/srv/nginx.conf" -e "$TMP/srv/error.log" 2> "$TMP/srv.err" &
PIDS+=($!)
MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    nginx -p "$TMP/proxy" -c "$TMP/proxy/nginx.conf" -e "$TMP/proxy/error.log" 2> "$TMP/proxy.err" &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.1 "$front"
export MESHIM_CONFIG=$TMP/client.ini
want=$(sha256sum < "$TMP/www/big")

# curl: a 3 MB file through sendfile, twice (the second resumes).
for i in 1 2; do
    got=$(shimmed curl -sS --max-time 20 "http://orders:$port/big" | sha256sum) || fail "curl"
    [ "$got" = "$want" ] || fail "curl: the body differs"
done
ok "curl → nginx (sendfile): 3 MB whole, twice"

# wrk: 4 keep-alive connections for 3 s; every answer a 200.
shimmed wrk -t1 -c4 -d3s "http://orders:$port/small" > "$TMP/wrk.out" 2>&1 || fail "wrk: $(cat "$TMP/wrk.out")"
grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out" && fail "wrk errors: $(cat "$TMP/wrk.out")"
reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
[ "${reqs:-0}" -gt 100 ] || fail "wrk: $(cat "$TMP/wrk.out")"
ok "wrk → nginx: $reqs requests over 4 kernel-TLS connections, no error"

# nginx as the client: an unmeshed curl to the meshed proxy, 20 requests
# over its pooled upstream connections.
for i in $(seq 1 20); do
    got=$(curl -sS --max-time 20 "http://127.0.0.1:$front/big" | sha256sum) || fail "through the nginx proxy"
    [ "$got" = "$want" ] || fail "through the nginx proxy: the body differs"
done
ok "nginx proxy_pass (keep-alive upstreams) → nginx: 20 × 3 MB whole"

kill "${PIDS[@]}" 2> /dev/null; wait "${PIDS[@]}" 2> /dev/null; PIDS=()
python3 - "$TMP/client-access.log" "$TMP/server-access.log" <<'PY' || fail "access logs"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
inb = [json.loads(l) for l in open(sys.argv[2]) if '"result":"ok"' in l]
assert len(out) >= 7, out                       # 2 curl, 4 wrk, >= 1 of the proxy's pool
assert all(l["tls"] == "ktls" for l in out), [l for l in out if l["tls"] != "ktls"]
# wrk's first connection only probes the address and closes at once; its
# server end may see the FIN before it can take the kernel's keys (the
# kernel refuses them on a closed socket) and then relays, saying why.
probe = lambda l: (l["tls"] == "relay" and l["tls_relay_why"] == "the peer closed before the hand-off"
                   and l["bytes_sent"] == 0 and l["bytes_received"] == 0)
assert len(inb) == len(out) and all(l["tls"] == "ktls" or probe(l) for l in inb), inb
assert sum(map(probe, inb)) <= 1, inb
proxy = [l for l in out if l["bytes_received"] > 20 * 3000000]
assert proxy, "the proxy's 20 bodies did not share its pooled connections"
PY
ok "access logs: every connection kernel TLS at both ends; the proxy's upstream connections pooled"
