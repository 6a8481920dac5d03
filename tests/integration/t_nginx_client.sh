# nginx as a client: proxy_pass http://orders:PORT resolves through the shim
# at start-up and every upstream connection is balanced.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
front=$(free_port)
start_backends "$port"
mkdir -p "$TMP/nginx"
cat > "$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$front;
        location / { proxy_pass http://orders:$port; }
    }
}
CONF
# round_robin: nginx makes its upstream connects one after another here, and
# the default (peak-EWMA p2c) would favour whichever answered fastest.
cat > "$TMP/mesh.ini" <<INI
[service:orders]
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
INI
MESHIM_CONFIG="$TMP/mesh.ini" \
    LD_PRELOAD="$MESHIM_PRELOAD" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
PIDS+=($!)
wait_port 127.0.0.1 "$front"
for i in $(seq 1 30); do
    curl -sS --max-time 5 "http://127.0.0.1:$front/who" >> "$TMP/nginx.out" || fail "request $i through nginx failed: $(tail -3 "$TMP/nginx/error.log")"
done
[ "$(wc -l < "$TMP/nginx.out")" -eq 30 ] || fail "nginx: $(wc -l < "$TMP/nginx.out") of 30 answers"
assert_spread "$TMP/nginx.out" 3 "nginx proxy_pass http://orders, 30 requests"
