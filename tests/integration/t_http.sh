# protocol = http: requests of one keep-alive connection spread over the
# endpoints; 503s retried elsewhere for GET and the endpoint ejected, POST
# never retried; routes by path and by header with the Host header kept;
# the access log, `meshim stats` and the exporter's text agree with what
# the client counted. Real programs: python3's http.client and http.server.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
for i in 2 3 4; do
    python3 tests/helpers/http_backend.py "127.0.0.$i" "$port" "b$i" "$TMP/b$i.log" &
    PIDS+=($!)
done
for i in 2 3 4; do wait_port "127.0.0.$i" "$port"; done

# A client that makes N requests on one connection and prints, per line,
# the status, the first word of each answer and the answer; then, unless
# FILE is "-", waits until FILE exists (so that its stats file can be read
# while it lives).
cat > "$TMP/client.py" <<'PY'
import http.client, os, sys, time
host, port, spec, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection(host, port, timeout=10)
for item in spec.split(","):
    n, method, path = item.split(":", 2)
    hdrs = {}
    if "|" in path:
        path, h = path.split("|")
        k, v = h.split("=")
        hdrs[k] = v
    for i in range(int(n)):
        c.request(method, path, body=b"x" * 10 if method == "POST" else None, headers=hdrs)
        r = c.getresponse()
        b = r.read().decode()
        print(r.status, b.split(" ")[0].strip(), b.strip(), flush=True)
if hold == "-":
    sys.exit(0)
open(hold + ".ready", "w").close()
for i in range(200):
    if os.path.exists(hold):
        break
    time.sleep(0.05)
PY

# 1. Per-request balancing: 300 requests, one connection, three endpoints
#    (round robin: exactly 100 each; per connection all 300 would go to one).
cat > "$TMP/spread.ini" <<INI
[meshim]
access_log = $TMP/spread.access
stats_dir = $TMP/stats
[service:web]
protocol = http
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
INI
MESHIM_CONFIG=$TMP/spread.ini shimmed python3 "$TMP/client.py" web "$port" "300:GET:/who" "$TMP/hold1" \
    > "$TMP/spread.out" 2> "$TMP/spread.err" &
client=$!
PIDS+=($client)
for i in $(seq 1 200); do [ -e "$TMP/hold1.ready" ] && break; sleep 0.05; done
[ -e "$TMP/hold1.ready" ] || fail "the client did not finish its 300 requests: $(tail -3 "$TMP/spread.err")"
[ "$(grep -c '^200 ' "$TMP/spread.out")" = 300 ] || fail "not 300 answers of 200: $(sort "$TMP/spread.out" | uniq -c | head)"
for i in 2 3 4; do
    n=$(grep -c "^GET /who" "$TMP/b$i.log" || true)
    [ "$n" = 100 ] || fail "endpoint b$i got $n of 300 requests of one connection (round robin: 100)"
done
ok "300 requests of one keep-alive connection: b2 $(grep -c . "$TMP/b2.log"), b3 $(grep -c . "$TMP/b3.log"), b4 $(grep -c . "$TMP/b4.log")"

# The access log has one line per request, agreeing with the backends.
[ "$(grep -c '"kind":"request"' "$TMP/spread.access")" = 300 ] || fail "not 300 request lines in the access log"
for i in 2 3 4; do
    logged=$(grep -c "\"endpoint\":\"127.0.0.$i:$port\".*\"status\":200\|\"status\":200.*\"endpoint\":\"127.0.0.$i:$port\"" "$TMP/spread.access" || true)
    served=$(grep -c "^GET /who" "$TMP/b$i.log")
    [ "$logged" = "$served" ] || fail "access log says $logged requests to b$i, b$i served $served"
done
ok "the access log's request lines agree with what each endpoint served"

# meshim stats and the exporter's text, while the client lives.
meshim stats --dir "$TMP/stats" > "$TMP/stats.txt" 2>&1 || fail "meshim stats: $(cat "$TMP/stats.txt")"
grep -q "requests 300 " "$TMP/stats.txt" || fail "meshim stats does not show 300 requests: $(cat "$TMP/stats.txt")"
grep -q "5xx 0 (0.0%)" "$TMP/stats.txt" || fail "meshim stats shows 5xx: $(cat "$TMP/stats.txt")"
meshim stats --dir "$TMP/stats" --prometheus > "$TMP/prom.txt" 2>&1 || fail "meshim stats --prometheus"
total=0
for i in 2 3 4; do
    v=$(grep "^meshim_requests_total{.*endpoint=\"127.0.0.$i:$port\",method=\"GET\",code=\"2xx\"}" "$TMP/prom.txt" | awk '{print $2}')
    [ "$v" = "$(grep -c "^GET /who" "$TMP/b$i.log")" ] || fail "meshim_requests_total for b$i is '$v'"
    total=$((total + v))
done
[ "$total" = 300 ] || fail "meshim_requests_total adds up to $total"
grep -q '^meshim_request_duration_seconds_count{.*service="web"} 300$' "$TMP/prom.txt" ||
    fail "meshim_request_duration_seconds_count is not 300: $(grep request_duration_seconds_count "$TMP/prom.txt")"
ok "meshim stats and meshim_requests_total / meshim_request_duration_seconds count the 300 requests"
touch "$TMP/hold1"
wait "$client" || fail "the client failed: $(tail -3 "$TMP/spread.err")"

# 2. An endpoint answering 503: GETs retried elsewhere (x-meshim-attempt),
#    the endpoint ejected; POSTs never retried.
python3 tests/helpers/http_backend.py 127.0.0.5 "$port" bad "$TMP/bad.log" 503 &
PIDS+=($!)
wait_port 127.0.0.5 "$port"
: > "$TMP/b2.log"
cat > "$TMP/retry.ini" <<INI
[meshim]
access_log = $TMP/retry.access
shared_state = off      ; each run counts its own failures (the POST run's 503s would carry over)
[service:web]
protocol = http
endpoints = 127.0.0.2:$port, 127.0.0.5:$port
lb = round_robin
retry_on = 5xx
retry_backoff = 1ms
eject_after = 1000
INI
# POSTs first (eject_after is high: the bad endpoint takes half of them).
MESHIM_CONFIG=$TMP/retry.ini shimmed python3 "$TMP/client.py" web "$port" "20:POST:/p" - \
    > "$TMP/post.out" 2> "$TMP/post.err" || fail "POST client: $(tail -3 "$TMP/post.err")"
got503=$(grep -c '^503 ' "$TMP/post.out" || true)
bad_posts=$(grep -c '^POST' "$TMP/bad.log" || true)
[ "$got503" -ge 5 ] || fail "only $got503 of 20 POSTs reached the 503 endpoint (round robin)"
[ "$got503" = "$bad_posts" ] || fail "the client saw $got503 answers of 503, the bad endpoint got $bad_posts POSTs"
! grep -q "attempt=2" "$TMP/b2.log" || fail "a POST was retried"
ok "POST is never retried: $got503 of 20 reached the 503 endpoint and the client got each 503"

sed -i 's/eject_after = 1000/eject_after = 3/' "$TMP/retry.ini"
: > "$TMP/bad.log"
MESHIM_CONFIG=$TMP/retry.ini shimmed python3 "$TMP/client.py" web "$port" "40:GET:/g" - \
    > "$TMP/get.out" 2> "$TMP/get.err" || fail "GET client: $(tail -3 "$TMP/get.err")"
[ "$(grep -c '^200 b2' "$TMP/get.out")" = 40 ] || fail "not every GET was answered by b2: $(sort "$TMP/get.out" | uniq -c)"
bad_gets=$(grep -c '^GET' "$TMP/bad.log" || true)
[ "$bad_gets" = 3 ] || fail "the 503 endpoint got $bad_gets GETs (eject_after = 3: it should be ejected after 3)"
grep -q "attempt=2" "$TMP/b2.log" || fail "no retried request carried x-meshim-attempt: 2"
grep -q "endpoint 127.0.0.5:$port ejected" "$TMP/get.err" || fail "no ejection logged: $(cat "$TMP/get.err")"
[ "$(grep -c '"attempts":2' "$TMP/retry.access")" = 3 ] || fail "the access log does not show 3 requests of 2 attempts"
ok "40 GETs all answered 200: the 3 that met a 503 were retried (x-meshim-attempt: 2), then the endpoint was ejected"

# An endpoint that closes each connection without an answer: under
# retry_on = gateway-error the GETs it took are sent again (Envoy counts a
# request with no answer as the 503 a proxy answers for it).
python3 tests/helpers/http_backend.py 127.0.0.6 "$port" drop "$TMP/drop.log" drop &
PIDS+=($!)
wait_port 127.0.0.6 "$port"
: > "$TMP/b2.log"
sed -e 's/127.0.0.5:/127.0.0.6:/' -e 's/retry_on = 5xx/retry_on = gateway-error/' -e 's/eject_after = 3/eject_after = 1000/' \
    -e "s#$TMP/retry.access#$TMP/drop.access#" "$TMP/retry.ini" > "$TMP/drop.ini"
MESHIM_CONFIG=$TMP/drop.ini shimmed python3 "$TMP/client.py" web "$port" "10:GET:/d" - \
    > "$TMP/drop.out" 2> "$TMP/drop.err" || fail "GET client: $(tail -3 "$TMP/drop.err")"
dropped=$(grep -c '^GET' "$TMP/drop.log" || true)
[ "$(grep -c '^200 b2' "$TMP/drop.out")" = 10 ] || fail "gateway-error: not every GET was answered by b2: $(sort "$TMP/drop.out" | uniq -c)"
[ "$dropped" -ge 3 ] || fail "the dropping endpoint got only $dropped of 10 GETs (round robin)"
[ "$(grep -c '"attempts":2' "$TMP/drop.access")" = "$dropped" ] ||
    fail "the access log does not show the $dropped dropped GETs retried: $(grep -c '"attempts":2' "$TMP/drop.access")"
ok "retry_on = gateway-error: the $dropped GETs whose endpoint closed without an answer were sent again; 10 of 10 answered 200"

# 3. Routes: by path prefix to v2, by header to canary, else the service.
: > "$TMP/b2.log"; : > "$TMP/b3.log"; : > "$TMP/b4.log"
cat > "$TMP/routes.ini" <<INI
[meshim]
access_log = $TMP/routes.access
[service:web]
protocol = http
endpoints = 127.0.0.2:$port
[service:web-v2]
endpoints = 127.0.0.3:$port
[service:web-canary]
endpoints = 127.0.0.4:$port
[route:v2]
from = web
path_prefix = /v2/
to = web-v2
[route:canary]
from = web
headers = x-canary: yes
to = web-canary
INI
MESHIM_CONFIG=$TMP/routes.ini shimmed python3 "$TMP/client.py" web "$port" \
    "3:GET:/v1/a,3:GET:/v2/b,3:GET:/v1/c|x-canary=yes,3:GET:/v1/d|x-canary=no,2:GET:/v2x" - \
    > "$TMP/routes.out" 2> "$TMP/routes.err" || fail "routes client: $(tail -3 "$TMP/routes.err")"
expect_route() {
    local path=$1 who=$2 n
    n=$(grep -c "^200 $who $who GET $path host=web:$port " "$TMP/routes.out" || true)
    [ "$n" -ge 2 ] || fail "$path: not answered by $who with the Host kept: $(grep " $path " "$TMP/routes.out")"
}
expect_route /v1/a b2
expect_route /v2/b b3
expect_route /v1/c b4
expect_route /v1/d b2
expect_route /v2x b2
grep -q '"route":"v2"' "$TMP/routes.access" || fail "the access log does not name route v2"
ok "routes: /v2/ prefix to web-v2, x-canary: yes to web-canary, the rest to web; Host kept"

# 4. The config check knows the keys and refuses what is wrong.
cat > "$TMP/bad.ini" <<INI
[service:web]
protocol = http
endpoints = 127.0.0.2:$port
retry_on = 5xx, sometimes
[route:r]
from = nowhere
to = web
INI
out=$(meshim check -c "$TMP/bad.ini" 2>&1) && fail "meshim check accepted a bad retry_on"
echo "$out" | grep -q "retry_on: not a list of connect-failure" || fail "no retry_on message: $out"
echo "$out" | grep -q '\[route:r\]: from: "nowhere" is not a service' || fail "no route message: $out"
meshim check -c "$TMP/routes.ini" > "$TMP/check.out" 2>&1 || fail "meshim check refused the routes config: $(cat "$TMP/check.out")"
ok "meshim check: protocol, retry_on and [route:NAME] checked"
