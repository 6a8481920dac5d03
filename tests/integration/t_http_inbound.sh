# protocol = http on [inbound:PORT] ports: the mesh counts and logs, per
# request, what the application answered, and changes no byte.
# - in the clear (tls = off): a shimmed python3 http.server answers keep-
#   alive GETs, a POST, HEAD, 204, a chunked answer, 100-continue and a
#   pipelined burst from an unshimmed client; every answer arrives as the
#   server wrote it; one inbound request line each, with the status the
#   client read; `meshim stats` and meshim_requests_total{service=
#   "inbound:PORT"} agree;
# - a shimmed nginx as the server, curl as the client;
# - an Upgrade goes on as raw bytes; a stream that is not HTTP passes
#   unchanged with one warning;
# - over mTLS (tls = strict): a meshed client's protocol = http service to
#   it: both ends log each request, the server's line with the client's
#   identity.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

port=$(free_port)
cat > "$TMP/server.ini" <<INI
[meshim]
access_log = $TMP/server.access
stats_dir = $TMP/stats
[inbound:$port]
tls = off
protocol = http
INI
MESHIM_CONFIG=$TMP/server.ini shimmed python3 tests/helpers/http_backend.py 127.0.0.2 "$port" b2 \
    "$TMP/b2.log" > "$TMP/b2.out" 2>&1 &
server=$!
PIDS+=($server)
wait_port 127.0.0.2 "$port"
# wait_port's probe is a connection without a request: no request line.

# 1. An unshimmed client: one keep-alive connection, then a pipelined burst.
python3 - 127.0.0.2 "$port" > "$TMP/client.out" 2> "$TMP/client.err" <<'PY' || fail "the client: $(tail -3 "$TMP/client.err")"
import http.client, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection(host, port, timeout=10)
def ask(method, path, body=None, headers={}):
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    print(method, path, r.status, len(data), flush=True)
for i in range(20):
    ask("GET", "/who")
ask("POST", "/post", body=b"y" * 5000)
ask("HEAD", "/who")
ask("GET", "/204")
ask("GET", "/chunked")
ask("PUT", "/put", body=b"z" * 100, headers={"Expect": "100-continue"})
c.close()
# Three requests in one write; the three answers read back.
s = socket.create_connection((host, port))
s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: pipe\r\n\r\n" % i for i in range(3)))
f = s.makefile("rb")
for i in range(3):
    status = f.readline().split()[1].decode()
    n = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    f.read(n)
    print("GET", "/p%d" % i, status, n, flush=True)
s.close()
PY
[ "$(grep -c ' 200 ' "$TMP/client.out")" = 27 ] || fail "the client's answers: $(sort "$TMP/client.out" | uniq -c)"

# Every request has its line (the lines of a connection come when each
# answer ends, the last ones when the server sees the connection close).
lines() { grep '"kind":"request"' "$TMP/server.access" 2>/dev/null; }
for _ in $(seq 1 100); do [ "$(lines | grep -c . || true)" -ge 28 ] && break; sleep 0.1; done
[ "$(lines | grep -c . || true)" = 28 ] || fail "$(lines | grep -c . || true) request lines for 28 requests: $(lines | tail -3)"
lines | grep -v '"direction":"inbound"' && fail "a request line is not inbound"
lines | grep -vq "\"service\":\"inbound:$port\"" && fail "a request line's service is not inbound:$port"
while read -r method path status _; do
    n=$(lines | grep -c "\"method\":\"$method\",\"authority\":\"[^\"]*\",\"path\":\"$path\",\"status\":$status,\"endpoint\":\"127.0.0.1:" || true)
    [ "$n" -ge 1 ] || fail "no line for $method $path $status: $(lines | grep "\"path\":\"$path\"")"
done < <(sort -u "$TMP/client.out")
[ "$(lines | grep -c '"method":"GET","authority":"[^"]*","path":"/who","status":200')" = 20 ] ||
    fail "not 20 lines for GET /who"
post=$(lines | grep '"path":"/post"')
case "$post" in *'"bytes_received":'5[0-9][0-9][0-9]}*) ;; *) fail "the POST's line does not count its 5000-byte body: $post" ;; esac
grep -q '"path":"/p2","status":200' "$TMP/server.access" || fail "the pipelined requests are not all logged"
ok "28 requests from an unshimmed client (keep-alive, POST, HEAD, 204, chunked, 100-continue, pipelined): one inbound line each, with the status the client read"

meshim stats --dir "$TMP/stats" > "$TMP/stats.txt" 2>&1 || fail "meshim stats: $(cat "$TMP/stats.txt")"
grep -q "inbound:$port" "$TMP/stats.txt" && grep -q "requests 28 " "$TMP/stats.txt" ||
    fail "meshim stats does not show inbound:$port with 28 requests: $(cat "$TMP/stats.txt")"
meshim stats --dir "$TMP/stats" --prometheus > "$TMP/prom.txt" 2>&1 || fail "meshim stats --prometheus"
v=$(grep "^meshim_requests_total{.*service=\"inbound:$port\",endpoint=\"\",method=\"GET\",code=\"2xx\"}" "$TMP/prom.txt" | awk '{print $2}')
[ "$v" = 25 ] || fail "meshim_requests_total{service=inbound:$port,GET,2xx} is '$v', the client made 25: $(grep requests_total "$TMP/prom.txt")"
grep -q "^meshim_request_duration_seconds_count{.*service=\"inbound:$port\"} 28$" "$TMP/prom.txt" ||
    fail "meshim_request_duration_seconds_count is not 28: $(grep request_duration_seconds_count "$TMP/prom.txt")"
ok "meshim stats and meshim_requests_total{service=\"inbound:$port\"} count the 28 requests"

# 2. Upgrade: the 101 is logged, the raw bytes after it pass unchanged.
out=$(python3 - 127.0.0.2 "$port" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
s.sendall(b"GET /not-a-request\r\n\r\nhello")
got = b""
while len(got) < 27:
    got += s.recv(100)
print(head.split(b"\r\n")[0].decode(), got.decode().replace("\r\n", "|"))
PY
) || fail "the upgrade client failed: $out"
[ "$out" = "HTTP/1.1 101 Switching Protocols GET /NOT-A-REQUEST||HELLO" ] || fail "the upgraded stream: $out"
for _ in $(seq 1 100); do grep -q '"path":"/upgrade","status":101' "$TMP/server.access" && break; sleep 0.1; done
grep -q '"path":"/upgrade","status":101' "$TMP/server.access" || fail "no line for the 101"
grep -q '/not-a-request\|/NOT-A-REQUEST' "$TMP/server.access" && fail "the raw bytes after the 101 were taken for a request"
ok "an Upgrade: its 101 logged, the raw bytes after it passed unchanged"

# 3. Not HTTP: the bytes pass unchanged (http.server answers 400 itself),
#    one warning.
out=$(printf '\x16\x03\x01\x00\x05hello\r\n\r\n' | timeout 10 python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(sys.stdin.buffer.read())
got = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    got += d
print(got.decode(errors="replace"))' 127.0.0.2 "$port") || fail "the binary client failed"
# (http.server answers a request line it cannot read as HTTP/0.9: no head.)
case "$out" in *"Error code: 400"*) out="Error code: 400" ;;
    *) fail "the server's own answer to a binary stream did not arrive: $out" ;; esac
for _ in $(seq 1 100); do grep -q "not HTTP/1.x" "$TMP/b2.out" && break; sleep 0.1; done
grep -q "inbound:$port: not HTTP/1.x.*not counted" "$TMP/b2.out" || fail "no warning for a stream that is not HTTP: $(cat "$TMP/b2.out")"
ok "a stream that is not HTTP passes unchanged (the server's own '$out'), with a warning"

# 4. A shimmed nginx as the server, curl as the client.
np=$(free_port)
cat > "$TMP/nginx.ini" <<INI
[meshim]
access_log = $TMP/nginx.access
[inbound:$np]
tls = off
protocol = http
INI
# (Its worker runs as root: the access log is in this test's private folder.)
NGINX_USER=root start_nginx ngx "server { listen 127.0.0.3:$np; location / { return 200 \"nginx \$request_uri\\n\"; } location /missing { return 404; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/nginx.ini"
wait_port 127.0.0.3 "$np"
out=$(curl -sS --max-time 10 "http://127.0.0.3:$np/a" "http://127.0.0.3:$np/b" "http://127.0.0.3:$np/missing" -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} ' 2>&1)
[ "$out" = "200 200 404 " ] || fail "curl to the shimmed nginx: $out"
for _ in $(seq 1 100); do [ "$(cat "$TMP/nginx.access" 2>/dev/null | grep -c '"kind":"request"')" -ge 3 ] && break; sleep 0.1; done
grep -q '"path":"/a","status":200' "$TMP/nginx.access" && grep -q '"path":"/b","status":200' "$TMP/nginx.access" &&
    grep -q '"path":"/missing","status":404' "$TMP/nginx.access" || fail "nginx's requests not logged: $(cat "$TMP/nginx.access")"
ok "a shimmed nginx's answers to curl (200, 200, 404 on one connection) logged"

# 5. Over mTLS: the client's protocol = http service to a strict http port.
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
tp=$(free_port)
tls_ini "$TMP/tls-server.ini" orders "[inbound:$tp]" "tls = strict" "protocol = http"
ini_access_log "$TMP/tls-server.ini" "$TMP/tls-server.access"
MESHIM_CONFIG=$TMP/tls-server.ini shimmed python3 tests/helpers/http_backend.py 127.0.0.4 "$tp" b4 \
    "$TMP/b4.log" > "$TMP/b4.out" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.4 "$tp"
tls_ini "$TMP/tls-client.ini" web "[service:orders]" "protocol = http" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" "endpoints = 127.0.0.4:$tp"
ini_access_log "$TMP/tls-client.ini" "$TMP/tls-client.access"
MESHIM_CONFIG=$TMP/tls-client.ini shimmed python3 -c '
import http.client, sys
c = http.client.HTTPConnection("orders", int(sys.argv[1]), timeout=10)
for i in range(10):
    c.request("GET", "/m%d" % i)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
' "$tp" 2> "$TMP/tls-client.err" || fail "the mTLS client: $(tail -3 "$TMP/tls-client.err")"
for _ in $(seq 1 100); do [ "$(cat "$TMP/tls-server.access" 2>/dev/null | grep -c '"kind":"request"')" -ge 10 ] && break; sleep 0.1; done
[ "$(grep -c '"kind":"request","direction":"inbound".*"status":200' "$TMP/tls-server.access")" = 10 ] ||
    fail "the server's request lines: $(cat "$TMP/tls-server.access")"
[ "$(grep '"kind":"request"' "$TMP/tls-server.access" | grep -c '"peer_identity":"spiffe://test.mesh/ns/prod/sa/web"')" = 10 ] ||
    fail "the server's request lines lack the client's identity: $(grep '"kind":"request"' "$TMP/tls-server.access" | head -2)"
[ "$(grep -c '"kind":"request","direction":"outbound".*"peer_identity":"spiffe://test.mesh/ns/prod/sa/orders"' "$TMP/tls-client.access")" = 10 ] ||
    fail "the client's request lines: $(grep '"kind":"request"' "$TMP/tls-client.access" | head -2)"
ok "over mTLS: 10 requests logged at both ends, each with the other end's identity"
