# protocol = http never breaks the application: chunked bodies and
# trailers, Expect: 100-continue, HEAD, 204 and 304 without bodies,
# Connection: close either way (each ends its own hop), pipelining, a
# client that leaves mid-request, Upgrade continuing as raw TCP, heads far beyond 8 KiB both
# ways, a stream that is not HTTP/1.x carried as TCP with one warning, and
# HTTP/1.1 whose body is framed two ways answered 400. A case each, with curl and
# python3 (http.client and raw sockets) against python3's http.server.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
python3 tests/helpers/http_backend.py 127.0.0.2 "$port" b2 "$TMP/b2.log" 2> "$TMP/backend.err" &
PIDS+=($!)
# A TCP echo server, for the stream that is not HTTP.
python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.3", int(sys.argv[1]))); s.listen(16)
def echo(c):
    while True:
        d = c.recv(4096)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
' "$port" &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.3 "$port"
cat > "$TMP/m.ini" <<INI
[meshim]
access_log = $TMP/access.log
[service:web]
protocol = http
endpoints = 127.0.0.2:$port
[service:raw]
protocol = http
endpoints = 127.0.0.3:$port
INI
export MESHIM_CONFIG=$TMP/m.ini

# Raw-socket cases: each prints what it checked or exits non-zero.
cat > "$TMP/wire.py" <<'PY'
import http.client, socket, sys, time
case, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def conn():
    return socket.create_connection((host, port), timeout=10)

def read_until(s, marker, limit=1 << 20):
    got = b""
    while marker not in got:
        d = s.recv(65536)
        if not d:
            break
        got += d
    return got

if case == "trailers":
    s = conn()
    s.sendall(b"GET /chunked HTTP/1.1\r\nHost: web\r\n\r\n")
    got = read_until(s, b"0\r\nx-check: b2\r\n\r\n")
    assert got.endswith(b"0\r\nx-check: b2\r\n\r\n"), got
    assert b"chunk-one chunk-two" in got.replace(b"\r\na\r\n", b""), got
    # A chunked request body with a trailer, on the same connection.
    s.sendall(b"POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n")
    got = read_until(s, b"len=11\n")
    assert b"b2 POST /up" in got and b"len=11" in got, got
    print("chunked answer with its trailer, chunked request with its trailer")
elif case == "nobody":
    c = http.client.HTTPConnection(host, port, timeout=10)
    for method, path, want in (("HEAD", "/h", 200), ("GET", "/204", 204), ("GET", "/304", 304),
                               ("HEAD", "/h2", 200), ("GET", "/after", 200)):
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        assert r.status == want, (path, r.status)
        assert (body != b"") == (path == "/after"), (path, body)
    print("HEAD, 204, 304, HEAD then GET on one connection")
elif case == "pipelined":
    s = conn()
    s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: web\r\n\r\n" % i for i in range(5)))
    got = read_until(s, b"GET /p4 ")
    got += read_until(s, b"\n") if not got.endswith(b"\n") else b""
    order = [int(x.split(b" ")[0]) for x in got.split(b"GET /p")[1:]]
    assert order == [0, 1, 2, 3, 4], got
    print("5 pipelined requests answered in order")
elif case == "client-close":
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/first", headers={"connection": "close"})
    r = c.getresponse()
    # The server kept its connection alive; the answer the application
    # reads says close, as its connection is closed after it.
    assert r.status == 200 and r.getheader("connection") == "close", r.getheaders()
    r.read()
    s = c.sock
    # The mesh closes the application's connection after the answer.
    assert s is None or s.recv(1) == b"", "still open after Connection: close"
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/second", headers={"connection": "close"})
    r = c.getresponse(); assert r.status == 200 and b"/second" in r.read()
    c2 = http.client.HTTPConnection(host, port, timeout=10)
    c2.request("GET", "/close")
    r = c2.getresponse(); assert r.read() == b"b2 closing\n"
    # The server closed its own connection, one hop: the application's
    # stays open (the line is not forwarded), and its next request goes
    # up on a new connection (the shell checks b2's log).
    assert r.getheader("connection") is None, r.getheaders()
    kept = c2.sock
    assert kept is not None, "the application's connection was closed with the server's"
    c2.request("GET", "/again")
    r = c2.getresponse(); assert b"/again" in r.read()
    assert c2.sock is kept, "http.client had to connect again"
    print("Connection: close from the client (its connection ends) and from the server (its own ends)")
elif case == "leaves":
    s = conn()
    s.sendall(b"POST /cut HTTP/1.1\r\nHost: web\r\nContent-Length: 100\r\n\r\nabc")
    time.sleep(0.3)
    s.close()
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/next")
    r = c.getresponse()
    assert r.status == 200 and b"/next" in r.read()
    print("a client that left mid-request; the next one is served")
elif case == "upgrade":
    s = conn()
    s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: web\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
    got = read_until(s, b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 101"), got
    for word in (b"hello", b"raw tcp"):
        s.sendall(word)
        got = read_until(s, word.upper())
        assert got == word.upper(), got
    print("101 Switching Protocols, then raw bytes both ways")
elif case == "not-http":
    s = conn()
    blob = bytes(range(256)) * 40
    s.sendall(blob)
    got = b""
    while len(got) < len(blob):
        d = s.recv(65536)
        assert d, "closed early"
        got += d
    assert got == blob
    s.sendall(b"PRI * HTTP/2.0\r\n")    # whatever follows is TCP too
    assert read_until(s, b"2.0\r\n") == b"PRI * HTTP/2.0\r\n"
    print("10 KiB of binary echoed through an http service, as TCP")
elif case == "smuggle":
    def read_to_end(s):
        got = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass                        # what it sent is left unread, as by nginx
        return got
    # HTTP/1.1 whose body is framed two ways: answered 400 here and closed,
    # never carried on as TCP (the echo server behind would send it back).
    for req in (b"POST /a HTTP/1.1\r\nHost: raw\r\nContent-Length: 6\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: raw\r\n\r\n",
                b"POST /a HTTP/1.1\r\nHost: raw\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello"):
        s = conn()
        s.sendall(req)
        got = read_to_end(s)
        assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got
        assert b"x-meshim-error: bad request" in got and b"connection: close" in got, got
        assert b"POST" not in got and b"admin" not in got, got
    # A head beyond 64 KiB: 431, as from Envoy (before: no answer, the
    # connection waited for ever); with its bulk in spaces llhttp skips too.
    for pad in (b" " + b"p" * 70000, b" " * 100000 + b"v"):
        s = conn()
        s.sendall(b"GET /big HTTP/1.1\r\nHost: raw\r\nX-Pad:" + pad + b"\r\n\r\n")
        got = read_to_end(s)
        assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), got[:200]
        assert b"GET /big" not in got, got[:200]
    print("Content-Length with Transfer-Encoding, and two lengths: 400; 70 and 100 KB heads: 431; "
          "each connection closed, nothing sent on")
elif case == "bare-lf":
    # HTTP/1.x with bare LF line ends (printf | nc health checks): llhttp
    # refuses it, servers such as nginx take it: carried as TCP, as before.
    s = conn()
    s.sendall(b"GET /lf HTTP/1.0\nHost: raw\n\n")
    got = read_until(s, b"raw\n\n")
    assert got == b"GET /lf HTTP/1.0\nHost: raw\n\n", got
    print("a request with bare LF line ends carried as TCP")
PY

for case in trailers nobody pipelined client-close leaves upgrade; do
    out=$(shimmed timeout 20 python3 "$TMP/wire.py" $case web 80 2> "$TMP/$case.err") ||
        fail "$case: $(tail -5 "$TMP/$case.err")"
    ok "$out"
done
out=$(shimmed timeout 20 python3 "$TMP/wire.py" not-http raw 80 2> "$TMP/raw.err") ||
    fail "not-http: $(tail -5 "$TMP/raw.err")"
[ "$(grep -c 'not HTTP/1.x' "$TMP/raw.err")" = 1 ] || fail "not one warning for the stream that is not HTTP: $(cat "$TMP/raw.err")"
ok "$out, with one warning"
out=$(shimmed timeout 20 python3 "$TMP/wire.py" smuggle raw 80 2> "$TMP/smuggle.err") ||
    fail "smuggle: $(tail -5 "$TMP/smuggle.err")"
grep -q 'not HTTP/1.x' "$TMP/smuggle.err" && fail "a request framed two ways was carried as TCP: $(cat "$TMP/smuggle.err")"
ok "$out"
[ "$(grep -c '"path":"/a","status":400' "$TMP/access.log")" = 2 ] &&
    [ "$(grep -c '"path":"/big","status":431' "$TMP/access.log")" = 2 ] ||
    fail "the 400s and 431s are not each in the access log: $(grep -E '"status":4[0-9]{2}' "$TMP/access.log")"
ok "each 400 and 431 answered here has its access-log line"
out=$(shimmed timeout 20 python3 "$TMP/wire.py" bare-lf raw 80 2> "$TMP/bare-lf.err") ||
    fail "bare-lf: $(tail -5 "$TMP/bare-lf.err")"
ok "$out"

# The application's Connection: close stayed on its side: the two requests
# of two such connections went up on one pooled connection, without it.
first=$(grep "^GET /first " "$TMP/b2.log") second=$(grep "^GET /second " "$TMP/b2.log")
case "$first" in *" connection=-") ;; *) fail "Connection: close was sent up: $first" ;; esac
[ "${first#* conn=}" = "${second#* conn=}" ] ||
    fail "two requests with Connection: close took two upstream connections: $first / $second"
ok "a client's Connection: close ends its own connection, not the pooled upstream one (${first#* attempt=None })"
closing=$(grep "^GET /close " "$TMP/b2.log") again=$(grep "^GET /again " "$TMP/b2.log")
[ -n "$again" ] && [ "${closing#* conn=}" != "${again#* conn=}" ] ||
    fail "after the server's Connection: close, the next request did not go up on a new connection: $closing / $again"
ok "a server's Connection: close ends the upstream connection; the next request of the application's goes up on a new one"

# Each went through the mesh's proxy, request by request.
for path in '"/chunked","status":200' '"/h","status":200' '"/204","status":204' '"/304","status":304' \
            '"/p4","status":200' '"/close","status":200' '"/upgrade","status":101'; do
    grep -q "\"path\":$path" "$TMP/access.log" || fail "no access-log line with path $path"
done
ok "each case went through the proxy (its request lines are in the access log)"

# The client that left: its request is logged as cut short (DC, no status).
grep -q '"path":"/cut","status":0,.*"flags":"DC"' "$TMP/access.log" ||
    fail "no access-log line for the request the client left: $(grep /cut "$TMP/access.log")"
ok "the request the client left is logged with status 0 and DC"

# curl: Expect: 100-continue with a 200 KiB body, and a chunked upload.
shims curl
head -c 204800 /dev/urandom > "$TMP/body"
out=$(shimmed curl -sS -v --max-time 10 -H 'Expect: 100-continue' --data-binary @"$TMP/body" \
      "http://web/upload" 2> "$TMP/curl.err") || fail "curl with Expect: $(tail -5 "$TMP/curl.err")"
grep -q "< HTTP/1.1 100 Continue" "$TMP/curl.err" || fail "curl saw no 100 Continue: $(grep '^<' "$TMP/curl.err")"
[ "$out" = "b2 POST /upload host=web attempt=None len=204800" ] || fail "curl with Expect got: $out"
out=$(shimmed curl -sS --max-time 10 -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/body" \
      "http://web/chunked-up" 2> "$TMP/curl2.err") || fail "curl chunked: $(tail -5 "$TMP/curl2.err")"
[ "$out" = "b2 POST /chunked-up host=web attempt=None len=204800" ] || fail "curl chunked upload got: $out"
ok "curl: Expect: 100-continue (100 forwarded, 200 KiB body) and a chunked upload of 200 KiB"
grep -q '"path":"/upload","status":200' "$TMP/access.log" || fail "the Expect upload is not in the access log"

# Heads beyond 8 KiB, as cookies, tokens and security headers make them
# (Envoy takes 60 KiB): a 30 KiB request header and a 40 KiB answer header
# on one keep-alive connection, each request parsed and balanced as any
# other. Before, the request's connection went on as raw TCP ("not
# HTTP/1.x (head too large)") and the answer became a 502.
shimmed python3 - > "$TMP/bighead.out" 2> "$TMP/bighead.err" <<'PY' || fail "large heads: $(cat "$TMP/bighead.out" "$TMP/bighead.err")"
import http.client
c = http.client.HTTPConnection("web", 80, timeout=10)
token = "t" * 30000
c.request("GET", "/header/x-token", headers={"X-Token": token})
r = c.getresponse()
assert r.status == 200 and r.read().decode() == token + "\n", r.status
c.request("GET", "/bighead/40000")
r = c.getresponse()
assert r.status == 200 and len(r.getheader("x-big")) == 40000 and r.read() == b"b2 bighead\n", r.status
c.request("GET", "/after-big")
r = c.getresponse()
assert r.status == 200 and r.read().startswith(b"b2 GET /after-big"), r.status
PY
grep -q "not HTTP" "$TMP/bighead.err" && fail "a large head was carried as TCP: $(cat "$TMP/bighead.err")"
for path in /header/x-token /bighead/40000 /after-big; do
    grep -q "\"path\":\"$path\",\"status\":200" "$TMP/access.log" || fail "$path is not in the access log with 200"
done
ok "a 30 KiB request header and a 40 KiB answer header on one keep-alive connection: each request parsed, answered 200 and logged"

# A stream that is not HTTP after requests to the same endpoint: it goes on
# a connection of its own, so its first bytes (h2c's preface) reach the
# server first, as without the mesh. The server answers HTTP/1.1 on a
# connection that began with a request line, echoes one that began with
# anything else, and says REUSED when bytes that are not a request follow
# requests on one connection. Before, the stream took the pooled connection
# the request had left.
wport=$(free_port)
python3 - "$wport" > "$TMP/mixed_server.out" 2>&1 <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.4", int(sys.argv[1]))); s.listen(16)
def serve(c):
    f = c.makefile("rb")
    first = True
    while True:
        line = f.readline()
        if not line:
            break
        if line.startswith(b"GET "):
            while f.readline() not in (b"\r\n", b""):
                pass
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhttp\n")
        elif first:
            c.sendall(line)
            while True:
                d = f.read1(4096)
                if not d:
                    break
                c.sendall(d)
            break
        else:
            c.sendall(b"REUSED\n")
            break
        first = False
    c.close()
print("ready", flush=True)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
PIDS+=($!)
wait_until "grep -q ready '$TMP/mixed_server.out'" || fail "the mixed server did not start: $(cat "$TMP/mixed_server.out")"
printf '[service:mixed]\nprotocol = http\nendpoints = 127.0.0.4:%s\n' "$wport" > "$TMP/mixed.ini"
MESHIM_CONFIG=$TMP/mixed.ini shimmed python3 - "$wport" > "$TMP/mixed.out" 2> "$TMP/mixed.err" <<'PY' ||
import http.client, socket, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection("mixed", port, timeout=10)
c.request("GET", "/first")
r = c.getresponse()
assert r.status == 200 and r.read() == b"http\n", r.status
c.close()                               # its upstream connection stays pooled
s = socket.create_connection(("mixed", port), timeout=10)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
got = b""
while len(got) < 24:
    d = s.recv(4096)
    if not d:
        break
    got += d
assert got == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", got
print("h2c's preface after a request went on a connection of its own")
PY
    fail "a stream that is not HTTP after a request: $(cat "$TMP/mixed.out" "$TMP/mixed.err")"
ok "$(cat "$TMP/mixed.out")"
