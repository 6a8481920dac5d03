# protocol = http with real programs on both sides: nginx as the client
# (proxy_pass with upstream keepalive) spreading its requests, nginx as the
# server of an asyncio client, wrk through a backend killed and restarted
# without one failed GET, and ab -k (HTTP/1.0 keep-alive).
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_py() {    # start_py N: http_backend.py on 127.0.0.N, its pid in PY_PID
    python3 tests/helpers/http_backend.py "127.0.0.$1" "$port" "b$1" "$TMP/b$1.log" 2>> "$TMP/backends.err" &
    PY_PID=$!
    PIDS+=($!)
}
for i in 2 3 4; do start_py $i; done
for i in 2 3 4; do wait_port "127.0.0.$i" "$port"; done

# 1. nginx as the client: its upstream keepalive connections to `web` carry
#    requests that the mesh spreads one by one.
front=$(free_port)
mkdir -p "$TMP/ngxlog" && chmod 777 "$TMP/ngxlog"     # the worker runs as nobody
cat > "$TMP/ngx.ini" <<INI
[meshim]
access_log = $TMP/ngxlog/access
[service:web]
protocol = http
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
INI
NGINX_WORKERS=1 start_nginx nginx "
    upstream web_up { server web:$port; keepalive 4; }
    server { listen 127.0.0.1:$front;
             location / { proxy_pass http://web_up; proxy_http_version 1.1;
                          proxy_set_header Connection \"\"; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/ngx.ini"
wait_port 127.0.0.1 "$front"
for i in $(seq 1 60); do
    curl -sS --max-time 5 "http://127.0.0.1:$front/n$i" >> "$TMP/ngx.out" || fail "request $i through nginx failed"
done
conns=$(grep -c '"kind":"request"' "$TMP/ngxlog/access" || true)
for i in 2 3 4; do
    n=$(grep -c "^GET /n" "$TMP/b$i.log" || true)
    [ "$n" = 20 ] || fail "b$i got $n of nginx's 60 requests (round robin per request: 20)"
done
[ "$conns" = 60 ] || fail "not 60 request lines in nginx's access log ($conns)"
ok "nginx (upstream keepalive) as the client: 60 requests spread 20/20/20"

# 2. nginx as the server, an asyncio client (streams, keep-alive).
sp=$(free_port)
mkdir -p "$TMP/www"
head -c 100000 /dev/urandom | base64 > "$TMP/www/file.txt"
mkdir -p "$TMP/www/few" && cp "$TMP/www/file.txt" "$TMP/www/few/"
# /few/: nginx closes its connection after every third request (part 4).
start_nginx static "server { listen 127.0.0.5:$sp; root $TMP/www; sendfile on;
    location /few/ { keepalive_requests 3; } }"
wait_port 127.0.0.5 "$sp"
cat > "$TMP/static.ini" <<INI
[meshim]
access_log = $TMP/static.access
[service:static]
protocol = http
endpoints = 127.0.0.5:$sp
INI
cat > "$TMP/aclient.py" <<'PY'
import asyncio, hashlib, sys
async def main(port, want):
    r, w = await asyncio.open_connection("static", port)
    for i in range(20):
        method = "HEAD" if i % 5 == 4 else "GET"
        w.write(b"%s /file.txt HTTP/1.1\r\nHost: static\r\n\r\n" % method.encode())
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        if method == "GET":
            body = await r.readexactly(length)
            assert hashlib.sha256(body).hexdigest() == want, "body differs"
    w.close()
    print("20 requests (16 GET, 4 HEAD) on one asyncio connection")
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
PY
want=$(sha256sum "$TMP/www/file.txt" | cut -d' ' -f1)
out=$(MESHIM_CONFIG=$TMP/static.ini shimmed timeout 20 python3 "$TMP/aclient.py" "$sp" "$want" 2> "$TMP/aclient.err") ||
    fail "asyncio client: $(tail -5 "$TMP/aclient.err")"
[ "$(grep -c '"kind":"request"' "$TMP/static.access")" = 20 ] || fail "not 20 request lines for the asyncio client"
ok "nginx as the server: $out, bodies intact"

# 3. wrk through a backend killed and restarted: no failed GET.
cat > "$TMP/wrk.ini" <<INI
[meshim]
shared_state = off
[service:web]
protocol = http
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
retry_on = 5xx
retries = 3
retry_budget = 100%
eject_time = 1s
INI
MESHIM_CONFIG=$TMP/wrk.ini shimmed timeout 30 wrk -t1 -c4 -d6s "http://web:$port/w" > "$TMP/wrk.out" 2>&1 &
wrk_pid=$!
PIDS+=($wrk_pid)
# Once requests flow, kill b3 (-9: connections reset mid-request), and
# bring it back 2 s later.
for i in $(seq 1 100); do grep -q "^GET /w" "$TMP/b3.log" 2>/dev/null && break; sleep 0.05; done
victim=${PIDS[1]}
kill -9 "$victim"
sleep 2
start_py 3
wait_port 127.0.0.3 "$port"
wait "$wrk_pid" || fail "wrk: $(cat "$TMP/wrk.out")"
grep -q "requests in" "$TMP/wrk.out" || fail "wrk: $(cat "$TMP/wrk.out")"
! grep -q "Non-2xx\|Socket errors" "$TMP/wrk.out" || fail "wrk saw failures: $(cat "$TMP/wrk.out")"
n=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
[ "$n" -gt 100 ] || fail "wrk made only $n requests"
ok "wrk: $n GETs, a backend killed (-9) and restarted meanwhile, none failed"

# 4. ab -k, an HTTP/1.0 client asking for keep-alive: it keeps a connection
#    only when the answer says Connection: keep-alive, and otherwise reads
#    until the connection ends. python3 -m http.server answers HTTP/1.0 and
#    closes: the mesh must end the application's connection with the answer
#    (ab hung, 30 s a connection, when it kept it open). nginx says
#    keep-alive: every request stays on ab's 4 connections; also where
#    nginx closes its own connection after every third request (/few/):
#    that hop ends, and ab's answer says keep-alive as nginx's would.
op=$(free_port)
mkdir -p "$TMP/old" && echo "old" > "$TMP/old/index.html"
(cd "$TMP/old" && exec python3 -m http.server --bind 127.0.0.6 "$op" > /dev/null 2>&1) &
PIDS+=($!)
wait_port 127.0.0.6 "$op"
# part 2's config (nginx as `static`), its own access log, and `old`
sed "s|^access_log = .*|access_log = $TMP/ab.access|" "$TMP/static.ini" > "$TMP/ab.ini"
printf '[service:old]\nprotocol = http\nendpoints = 127.0.0.6:%s\n' "$op" >> "$TMP/ab.ini"
MESHIM_CONFIG=$TMP/ab.ini shimmed timeout 60 ab -s 5 -k -n 100 -c 4 "http://old:$op/" > "$TMP/ab-old.out" 2>&1 ||
    fail "ab -k to an HTTP/1.0 server: $(grep -E 'requests|apr_' "$TMP/ab-old.out")"
grep -q "^Complete requests: *100$" "$TMP/ab-old.out" && grep -q "^Failed requests: *0$" "$TMP/ab-old.out" ||
    fail "ab -k to an HTTP/1.0 server: $(grep -E 'requests' "$TMP/ab-old.out")"
MESHIM_CONFIG=$TMP/ab.ini shimmed timeout 60 ab -s 5 -k -n 100 -c 4 "http://static:$sp/file.txt" > "$TMP/ab-ngx.out" 2>&1 ||
    fail "ab -k to nginx: $(grep -E 'requests|apr_' "$TMP/ab-ngx.out")"
grep -q "^Keep-Alive requests: *100$" "$TMP/ab-ngx.out" && grep -q "^Failed requests: *0$" "$TMP/ab-ngx.out" ||
    fail "ab -k to nginx: $(grep -E 'requests' "$TMP/ab-ngx.out")"
MESHIM_CONFIG=$TMP/ab.ini shimmed timeout 60 ab -s 5 -k -n 100 -c 4 "http://static:$sp/few/file.txt" > "$TMP/ab-few.out" 2>&1 ||
    fail "ab -k to nginx closing every third: $(grep -E 'requests|apr_' "$TMP/ab-few.out")"
grep -q "^Keep-Alive requests: *100$" "$TMP/ab-few.out" && grep -q "^Failed requests: *0$" "$TMP/ab-few.out" ||
    fail "ab -k to nginx closing every third: $(grep -E 'requests' "$TMP/ab-few.out")"
n=$(grep -c '"kind":"request".*"status":200' "$TMP/ab.access" || true)
[ "$n" = 300 ] || fail "not 300 request lines with status 200 for ab ($n)"
ok "ab -k (HTTP/1.0 keep-alive): 100 to an HTTP/1.0 server that closes, 100 kept alive to nginx, 100 kept alive where nginx closes every third, all answered"
