# Transparent mTLS between unmodified programs, both ends shimmed, on
# loopback, with a test PKI made by openssl (certs.sh):
# - curl and python3 (blocking, with a timeout, asyncio) → a shimmed python3
#   http.server on a strict port; a recording TCP relay in between proves
#   that only TLS went over the wire (no byte of the request or the answer);
# - a plaintext client, a client of the wrong namespace (allow), and wrong
#   servers (identity, expired, unknown CA, plaintext) are refused with their reason;
#   the application never sees a refused client's bytes;
# - standard TLS both ways: curl --cert against the shimmed server, the
#   shimmed client against openssl s_server -Verify;
# - permissive ports take both; sessions are resumed; 8 MB written just
#   before exit() all arrive; no OpenSSL symbol is exported.
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
mkdir -p "$TMP/www"
echo "TOPSECRET-ANSWER" > "$TMP/www/secret-file"

# The server: orders' identity, strict, only prod workloads.
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict" "allow = spiffe://test.mesh/ns/prod/**"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u -m http.server --bind 127.0.0.2 --directory "$TMP/www" "$port" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"

# A recording relay on 127.0.0.1:$tap to the server: what went over the wire.
tap=$(free_port)
python3 - "$tap" "$port" "$TMP/wire" > "$TMP/tap.log" 2>&1 <<'PY' &
import socket, sys, threading
tap, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", tap)); ls.listen(64)
lock = threading.Lock()
def pipe(a, b, path):
    while True:
        d = a.recv(65536)
        if not d:
            break
        with lock:
            with open(path, "ab") as f:
                f.write(d)
        b.sendall(d)
    try: b.shutdown(socket.SHUT_WR)
    except OSError: pass
while True:
    c, _ = ls.accept()
    s = socket.create_connection(("127.0.0.2", port))
    threading.Thread(target=pipe, args=(c, s, out + ".up"), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, out + ".down"), daemon=True).start()
PY
PIDS+=($!)
wait_port 127.0.0.1 "$tap"

tls_ini "$TMP/client.ini" web \
    "[service:orders]" "endpoints = 127.0.0.1:$tap" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" "lb = round_robin" "retries = 1"
export MESHIM_CONFIG=$TMP/client.ini

# --- clients through the tap ----------------------------------------------
if ! under_asan; then
    got=$(shimmed curl -sS --max-time 10 "http://orders:$port/secret-file" 2>"$TMP/curl.err") \
        || fail "curl over mTLS: $(cat "$TMP/curl.err")"
    [ "$got" = "TOPSECRET-ANSWER" ] || fail "curl over mTLS got: $got"
fi
shimmed python3 - "$port" > "$TMP/py.out" 2> "$TMP/py.err" <<'PY' || fail "python3 over mTLS: $(cat "$TMP/py.err")"
import asyncio, socket, sys, urllib.request
port = int(sys.argv[1])
url = "http://orders:%d/secret-file" % port
# with a timeout: a non-blocking socket, the handshake made by the engine
for _ in range(5):
    assert urllib.request.urlopen(url, timeout=5).read() == b"TOPSECRET-ANSWER\n"
# blocking: the handshake in the caller's thread; real TCP addresses
s = socket.create_connection(("orders", port))
s.sendall(b"GET /secret-file HTTP/1.0\r\n\r\n")
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
assert data.endswith(b"TOPSECRET-ANSWER\n"), data
assert s.getpeername()[0] == "127.0.0.1", s.getpeername()
assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
s.close()
# asyncio
async def one():
    r, w = await asyncio.open_connection("orders", port)
    w.write(b"GET /secret-file HTTP/1.0\r\n\r\n")
    body = await r.read()
    w.close()
    return body.endswith(b"TOPSECRET-ANSWER\n")
async def main():
    return await asyncio.gather(*[one() for _ in range(10)])
assert all(asyncio.run(main()))
print("ok")
PY
[ -s "$TMP/wire.up" ] && [ -s "$TMP/wire.down" ] || fail "nothing went through the tap"
cat "$TMP/wire.up" "$TMP/wire.down" | grep -aq "TOPSECRET\|secret-file\|GET /\|HTTP/1" \
    && fail "plaintext on the wire"
[ "$(head -c3 "$TMP/wire.up" | od -An -tx1 | tr -d ' ')" = "160301" ] \
    || fail "the client's bytes do not start with a TLS handshake record"
ok "curl, python3 (timeout, blocking, asyncio x10) over mTLS: answers right; the wire carried TLS only ($(cat "$TMP/wire.up" "$TMP/wire.down" | wc -c) bytes, no request or answer text)"

# --- refused --------------------------------------------------------------
lines_before=$(grep -c '"GET' "$TMP/server.log")
out=$(curl -sS --max-time 5 "http://127.0.0.2:$port/secret-file" 2>&1) && fail "plaintext client got an answer: $out"
# The server logs a refusal after it has closed the connection: the client
# may be done first, so each refusal is waited for.
wait_until 'grep -q "client 127.0.0.1:[0-9]* refused: TLS handshake: http request" "$TMP/server.log"' \
    || fail "no refusal for the plaintext client: $(tail -3 "$TMP/server.log")"
# A plaintext client whose message is shorter than a TLS record header (3
# bytes and then it waits for the answer) is refused for what it sent, not
# left to the handshake's 10 s deadline ("timed out").
python3 - "$port" 2> "$TMP/short.err" <<'PY' || fail "short plaintext client: $(cat "$TMP/short.err")"
import socket, sys
s = socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=30)
s.sendall(b"hi\n")
try:
    assert s.recv(100) == b""       # the end, never an answer
except ConnectionResetError:
    pass
PY
wait_until 'grep -q "refused: TLS handshake: plaintext (the client.s first bytes are not TLS)" "$TMP/server.log"' \
    || fail "the short plaintext client was not refused for its bytes: $(grep refused "$TMP/server.log" | tail -2)"

tls_ini "$TMP/bad.ini" bad "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls"
MESHIM_CONFIG=$TMP/bad.ini shimmed python3 - "$port" 2>"$TMP/bad.err" <<'PY' || fail "bad client: $(cat "$TMP/bad.err")"
import socket, sys
s = socket.create_connection(("orders", int(sys.argv[1])), timeout=5)
try:                # TLS 1.3: the server refuses after the client's handshake is done
    s.sendall(b"GET /secret-file HTTP/1.0\r\n\r\n")
    assert s.recv(100) == b""      # EOF, never an answer
except (BrokenPipeError, ConnectionResetError):
    pass
PY
wait_until 'grep -q "refused: peer identity spiffe://test.mesh/ns/dev/sa/bad is not spiffe://test.mesh/ns/prod/\*\*" \
    "$TMP/server.log"' || fail "no allow refusal: $(tail -3 "$TMP/server.log")"
[ "$(grep -c '"GET' "$TMP/server.log")" -eq "$lines_before" ] \
    || fail "a refused client's request reached the server application"
ok "plaintext clients (an HTTP request, a 3-byte line) and a client outside 'allow' refused with their reason; the application saw neither"

# Certificates from the trusted CA that only look allowed (review finding 6):
# two URI SANs with the allowed one second, and a path with "..". curl
# presents them; the server refuses each with its reason and the
# application never sees the request.
for who in twosans dotdot; do
    out=$(curl -sS --max-time 5 --cacert "$C/ca.pem" --cert "$C/$who.pem" --key "$C/$who.key" \
        "https://127.0.0.2:$port/secret-file" 2>&1) && fail "$who got an answer: $out"
done
wait_until 'grep -q "refused: the certificate has several URI SANs (an X509-SVID has one)" "$TMP/server.log"' ||
    fail "no refusal of two URI SANs: $(tail -3 "$TMP/server.log")"
wait_until 'grep -q "refused: the certificate'"'"'s URI SAN is not a valid SPIFFE ID" "$TMP/server.log"' ||
    fail "no refusal of a '..' SPIFFE ID: $(tail -3 "$TMP/server.log")"
[ "$(grep -c '"GET' "$TMP/server.log")" -eq "$lines_before" ] \
    || fail "a request with a look-alike identity reached the server application"
ok "look-alike identities refused: two URI SANs (allowed one second), a '..' path"

# Wrong servers: the connect fails (ECONNRESET) after its retries, one warning says why.
wrong_server() {    # NAME PORT EXPECTED_REASON [identity]
    local name=$1 p=$2 reason=$3 identity=${4:-}
    if [ "$name" = plaintext ]; then     # not meshed: it answers the ClientHello in HTTP
        python3 -m http.server --bind 127.0.0.3 --directory "$TMP/www" "$p" > "$TMP/$name-srv.log" 2>&1 &
    else
        tls_ini "$TMP/$name-srv.ini" "$name" "[inbound:$p]" "tls = strict"
        MESHIM_CONFIG=$TMP/$name-srv.ini LD_PRELOAD="$MESHIM_PRELOAD" \
            python3 -m http.server --bind 127.0.0.3 --directory "$TMP/www" "$p" > "$TMP/$name-srv.log" 2>&1 &
    fi
    PIDS+=($!)
    wait_port 127.0.0.3 "$p"
    tls_ini "$TMP/$name-cli.ini" web "[service:orders]" "endpoints = 127.0.0.3:$p" "tls = mtls" \
        "retries = 1" "retry_backoff = 5ms" ${identity:+"identity = $identity"}
    MESHIM_CONFIG=$TMP/$name-cli.ini shimmed python3 -c "
import errno, socket, sys
try:
    socket.create_connection(('orders', $p), timeout=5)
except OSError as e:
    assert e.errno == errno.ECONNRESET, e
    sys.exit(0)
sys.exit('connected to a wrong server')
" 2> "$TMP/$name.err" || fail "$name: $(cat "$TMP/$name.err")"
    grep -q "orders: connect failed after 2 attempts; last: 127.0.0.3:$p: $reason" "$TMP/$name.err" \
        || fail "$name: no warning with the reason: $(cat "$TMP/$name.err")"
}
p2=$(free_port)
wrong_server orders "$p2" "peer identity spiffe://test.mesh/ns/prod/sa/orders is not spiffe://test.mesh/ns/prod/sa/payments" \
    "spiffe://test.mesh/ns/prod/sa/payments"
p3=$(free_port)
wrong_server expired "$p3" "TLS handshake: peer certificate not accepted: certificate has expired"
p4=$(free_port)
wrong_server rogue "$p4" "TLS handshake: peer certificate not accepted: unable to get local issuer certificate"
p5=$(free_port)
wrong_server plaintext "$p5" "TLS handshake: wrong version number (the server does not speak TLS: a plaintext port?)"
ok "wrong servers refused: identity mismatch, expired, unknown CA, a plaintext server (ECONNRESET after 2 attempts, reason in the warning)"

# --- standard TLS both ways -----------------------------------------------
out=$(curl -sS --max-time 5 --cacert "$C/ca.pem" --cert "$C/web.pem" --key "$C/web.key" \
      --resolve "orders:$port:127.0.0.2" "https://orders:$port/secret-file" 2>&1) \
    || fail "curl --cert to the shimmed server: $out"
[ "$out" = "TOPSECRET-ANSWER" ] || fail "curl --cert got: $out"
out=$(curl -sS --max-time 5 --cacert "$C/ca.pem" --resolve "orders:$port:127.0.0.2" \
      "https://orders:$port/secret-file" 2>&1) && fail "curl without a client certificate got: $out"

sp=$(free_port)
openssl s_server -accept "127.0.0.4:$sp" -cert "$C/orders.pem" -key "$C/orders.key" \
    -CAfile "$C/ca.pem" -Verify 2 -verify_return_error -www > "$TMP/s_server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.4 "$sp"
tls_ini "$TMP/ss.ini" web "[service:orders]" "endpoints = 127.0.0.4:$sp" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
MESHIM_CONFIG=$TMP/ss.ini shimmed python3 -c "
import socket
s = socket.create_connection(('orders', $sp), timeout=5)
s.sendall(b'GET / HTTP/1.0\r\n\r\n')
data = b''
while True:
    d = s.recv(65536)
    if not d: break
    data += d
assert b'no client certificate' not in data.lower() and b'CN=web' in data, data[-1500:]
" 2> "$TMP/ss.err" || fail "shimmed client to openssl s_server -Verify: $(cat "$TMP/ss.err")"
ok "standard TLS: curl --cert to the shimmed server, the shimmed client to openssl s_server -Verify"

# --- permissive -----------------------------------------------------------
pp=$(free_port)
tls_ini "$TMP/perm.ini" orders "[inbound:$pp]" "tls = permissive"
serve_www "$TMP/perm.ini" "$pp" "$TMP/perm.log"
out=$(curl -sS --max-time 5 "http://127.0.0.2:$pp/secret-file") || fail "permissive, plaintext: $out"
[ "$out" = "TOPSECRET-ANSWER" ] || fail "permissive plaintext got: $out"
tls_ini "$TMP/perm-cli.ini" web "[service:orders]" "endpoints = 127.0.0.2:$pp" "tls = mtls"
MESHIM_CONFIG=$TMP/perm-cli.ini shimmed python3 -c "
import urllib.request
assert urllib.request.urlopen('http://orders:$pp/secret-file', timeout=5).read() == b'TOPSECRET-ANSWER\n'
" 2> "$TMP/perm.err" || fail "permissive, mTLS: $(cat "$TMP/perm.err")"
# Plaintext whose first byte is TLS's 0x16 still reaches the application
# (the bytes after it fit no ClientHello): http.server answers it (501).
python3 -c "
import socket
s = socket.create_connection(('127.0.0.2', $pp), timeout=5)
s.sendall(b'\x16GET / HTTP/1.0\r\n\r\n')
data = s.recv(100)
assert data.startswith(b'HTTP/1.0 '), data
" 2> "$TMP/perm16.err" || fail "permissive, plaintext starting 0x16: $(cat "$TMP/perm16.err")"
ok "permissive port: a plaintext client, one starting with 0x16, and an mTLS client all served"
# Silent clients of a client-first server (http.server never speaks first),
# detect_timeout = 200ms: a TLS client that waits 1 s before its
# ClientHello still gets TLS (silence alone is not plaintext while the
# application waits too), and a plaintext client silent for 3.5 s is served
# as plaintext (before, it was refused at 3 s). Both at once.
ps=$(free_port)
tls_ini "$TMP/perm-slow.ini" orders "[inbound:$ps]" "tls = permissive" "detect_timeout = 200ms"
serve_www "$TMP/perm-slow.ini" "$ps" "$TMP/perm-slow.log"
python3 - "$ps" "$C" <<'PY' 2> "$TMP/perm-slow.err" || fail "permissive, silent clients: $(cat "$TMP/perm-slow.err"; grep meshim "$TMP/perm-slow.log" | tail -3)"
import socket, ssl, sys, threading, time
port, pki = int(sys.argv[1]), sys.argv[2]
answers = {}
def get(s):
    s.sendall(b"GET /secret-file HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data.split(b"\r\n\r\n", 1)[-1]
def late_tls():
    raw = socket.create_connection(("127.0.0.2", port), timeout=10)
    time.sleep(1.0)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki + "/ca.pem")
    ctx.load_cert_chain(pki + "/web.pem", pki + "/web.key")
    answers["tls"] = get(ctx.wrap_socket(raw))
def late_plain():
    s = socket.create_connection(("127.0.0.2", port), timeout=10)
    time.sleep(3.5)
    answers["plain"] = get(s)
ts = [threading.Thread(target=f) for f in (late_tls, late_plain)]
[t.start() for t in ts]
[t.join() for t in ts]
assert answers == {"tls": b"TOPSECRET-ANSWER\n", "plain": b"TOPSECRET-ANSWER\n"}, answers
PY
! grep "refused" "$TMP/perm-slow.log" || fail "permissive, silent clients: a refusal"
ok "permissive port, client-first server: a TLS client silent for 1 s gets TLS, a plaintext one silent for 3.5 s is served"
# A permissive port whose process has no identity (its certificate not
# mounted yet) still serves its plaintext clients, which need none; an mTLS
# client is refused, saying why. Before, every client was refused.
pq=$(free_port)
sed -e "s|^cert = .*|cert = $TMP/no-such-cert.pem|" -e "s|^\[inbound:.*|[inbound:$pq]|" "$TMP/perm.ini" > "$TMP/perm-noid.ini"
serve_www "$TMP/perm-noid.ini" "$pq" "$TMP/perm-noid.log"
out=$(curl -sS --max-time 5 "http://127.0.0.2:$pq/secret-file") ||
    fail "permissive without an identity, plaintext: $out $(grep meshim "$TMP/perm-noid.log" | tail -2)"
[ "$out" = "TOPSECRET-ANSWER" ] || fail "permissive without an identity, plaintext got: $out"
sed -e "s|$pp|$pq|" "$TMP/perm-cli.ini" > "$TMP/perm-noid-cli.ini"
MESHIM_CONFIG=$TMP/perm-noid-cli.ini shimmed python3 -c "
import urllib.request
urllib.request.urlopen('http://orders:$pq/secret-file', timeout=5).read()
" 2> "$TMP/perm-noid.err" && fail "permissive without an identity: an mTLS client was served"
for _ in $(seq 1 50); do grep -q "refused: a TLS client" "$TMP/perm-noid.log" && break; sleep 0.1; done
grep -q "inbound:$pq: client 127.0.0.1:[0-9]* refused: a TLS client, and this process has no usable mTLS identity (only plaintext clients are served)" \
    "$TMP/perm-noid.log" || fail "permissive without an identity: no refusal line: $(grep meshim "$TMP/perm-noid.log" | tail -2)"
ok "permissive port without an identity: plaintext clients served, an mTLS client refused with the reason"

# --- resumption, 8 MB before exit ------------------------------------------
tls_ini "$TMP/direct.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls"
MESHIM_LOG_LEVEL=debug MESHIM_CONFIG=$TMP/direct.ini shimmed python3 - "$port" 2> "$TMP/resume.err" <<'PY' || fail "resumption run: $(tail -3 "$TMP/resume.err")"
import socket, sys
port = int(sys.argv[1])
for _ in range(100):
    s = socket.create_connection(("orders", port), timeout=5)
    s.sendall(b"GET /secret-file HTTP/1.0\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
PY
n=$(grep -c "orders: mTLS with spiffe://test.mesh/ns/prod/sa/orders" "$TMP/resume.err")
r=$(grep -c "session resumed" "$TMP/resume.err")
[ "$n" -eq 100 ] || fail "100 connections, $n handshakes logged: $(tail -5 "$TMP/resume.err")"
[ "$r" -ge 90 ] || fail "only $r of 100 sessions resumed"
ok "sessions resumed: $r of 100 sequential connections"

sink=$(free_port)
tls_ini "$TMP/sink.ini" orders "[inbound:$sink]" "tls = strict"
MESHIM_CONFIG=$TMP/sink.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 tests/helpers/sink.py 127.0.0.2 "$sink" \
    "$TMP/sink.out" --once > "$TMP/sink.log" 2>&1 &
PIDS+=($!)
sink_pid=$!
wait_port 127.0.0.2 "$sink"
tls_ini "$TMP/sink-cli.ini" web "[service:sink]" "endpoints = 127.0.0.2:$sink" "tls = mtls"
want=$(MESHIM_CONFIG=$TMP/sink-cli.ini shimmed python3 -c "
import hashlib, os, socket, sys
data = os.urandom(8 << 20)
s = socket.create_connection(('sink', $sink))
s.sendall(data)
print(len(data), hashlib.sha256(data).hexdigest())
sys.exit(0)     # at once: what is still in the relay must go out
") || fail "8 MB client failed"
wait "$sink_pid"
[ "$(cat "$TMP/sink.out")" = "$want" ] || fail "8 MB then exit(): sent $want, received $(cat "$TMP/sink.out")"
ok "8 MB written just before exit() all arrived (sha256 equal)"

# --- nginx as the mTLS server: epoll (edge-triggered), sendfile ------------
np=$(free_port)
mkdir -p "$TMP/ngx/html"
head -c $((20 << 20)) /dev/urandom > "$TMP/ngx/html/big"
echo "nginx-ok" > "$TMP/ngx/html/who"
chmod o+rx "$TMP" "$TMP/ngx" "$TMP/ngx/html"; chmod o+r "$TMP/ngx/html/"*   # workers run as nobody
tls_ini "$TMP/ngx.ini" orders "[inbound:$np]" "tls = strict"
start_nginx ngx "sendfile on; server { listen 127.0.0.5:$np; root $TMP/ngx/html; }" \
    MESHIM_CONFIG="$TMP/ngx.ini" LD_PRELOAD="$MESHIM_PRELOAD"
wait_port 127.0.0.5 "$np"
tls_ini "$TMP/ngx-cli.ini" web "[service:web]" "endpoints = 127.0.0.5:$np" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
want=$(sha256sum < "$TMP/ngx/html/big" | cut -d' ' -f1)
got=$(MESHIM_CONFIG=$TMP/ngx-cli.ini shimmed python3 -c "
import hashlib, urllib.request
print(hashlib.sha256(urllib.request.urlopen('http://web:$np/big', timeout=30).read()).hexdigest())") \
    || fail "20 MB from nginx over mTLS failed: $(cat "$TMP/ngx/stderr" "$TMP/ngx/error.log")"
[ "$got" = "$want" ] || fail "20 MB from nginx: checksum differs"
if ! under_asan; then
    MESHIM_CONFIG=$TMP/ngx-cli.ini shimmed wrk -t1 -c8 -d2s "http://web:$np/who" > "$TMP/wrk.out" 2>&1 \
        || fail "wrk: $(cat "$TMP/wrk.out")"
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    [ "${n:-0}" -ge 200 ] || fail "wrk over mTLS to nginx: only ${n:-0} requests: $(cat "$TMP/wrk.out")"
    grep -q "Non-2xx\|Socket errors" "$TMP/wrk.out" && fail "wrk over mTLS: errors: $(cat "$TMP/wrk.out")"
    wrk_note=", wrk (shimmed, 8 connections) $n requests in 2 s without an error"
fi
ok "nginx (shimmed, strict, sendfile, epoll ET): 20 MB over mTLS with the same sha256${wrk_note:-}"
# A non-blocking connect over mTLS, as event loops make it: the engine
# finishes it (handshake and all), and connect() called again answers as
# the kernel does once one completed, 0 and then EISCONN (a loop polling
# with connect() until it returns 0 stops there).
for mode in oneshot poll; do
    out=$(MESHIM_CONFIG=$TMP/ngx-cli.ini shimmed "$ROOT/$BUILD/tests/nbconnect" web "$np" "$mode" 2>&1) \
        || fail "nbconnect $mode over mTLS: $out"
    [[ "$out" == *"body=nginx-ok"* ]] || fail "nbconnect $mode over mTLS: unexpected '$out'"
done
ok "non-blocking connects over mTLS (epoll one-shot, poll): connect() again gives 0, then EISCONN"

# --- rotation: the server's certificate changes under a running client ------
rp=$(free_port)
cp "$C/orders.pem" "$TMP/rot.pem"; cp "$C/orders.key" "$TMP/rot.key"
printf '[tls]\ncert = %s\nkey = %s\nca = %s\nreload_interval = 200ms\n[inbound:%s]\ntls = strict\n' \
    "$TMP/rot.pem" "$TMP/rot.key" "$C/ca.pem" "$rp" > "$TMP/rot.ini"
MESHIM_LOG_LEVEL=info MESHIM_CONFIG=$TMP/rot.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -m http.server --bind 127.0.0.2 --directory "$TMP/www" "$rp" > "$TMP/rot.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$rp"
serial() {
    openssl s_client -connect "127.0.0.2:$rp" -cert "$C/web.pem" -key "$C/web.key" -CAfile "$C/ca.pem" \
        < /dev/null 2>/dev/null | openssl x509 -noout -serial
}
before=$(serial)
leaf "$C" orders2 "URI:spiffe://test.mesh/ns/prod/sa/orders,DNS:orders" ca || fail "new certificate"
cp "$C/orders2.key" "$TMP/rot.key.new"; cp "$C/orders2.pem" "$TMP/rot.pem.new"
mv "$TMP/rot.key.new" "$TMP/rot.key"; mv "$TMP/rot.pem.new" "$TMP/rot.pem"
want_serial="serial=$(openssl x509 -in "$C/orders2.pem" -noout -serial | cut -d= -f2)"
for i in $(seq 1 50); do [ "$(serial)" = "$want_serial" ] && break; sleep 0.1; done
after=$(serial)
[ "$after" = "$want_serial" ] && [ "$before" != "$after" ] || fail "rotation: $before then $after, want $want_serial"
grep -q "identity reloaded from $TMP/rot.pem" "$TMP/rot.log" || fail "no reload line: $(cat "$TMP/rot.log")"
ok "rotation: the server's new certificate ($want_serial, was ${before#serial=}) served without a restart"

# --- trust rotated: no session made under the old trust is resumed ---------
# (security review, finding 12.) A TLS 1.3 resumption skips the server's
# certificate: a client whose CA file now names another CA must make a full
# handshake, which fails, not resume a session the old CA vouched for.
make_certs "$TMP/pki2" > /dev/null 2>&1 || fail "cannot make a second CA"
cp "$C/ca.pem" "$TMP/trust.pem"
printf '[meshim]\nlog_level = debug\n[tls]\ncert = %s\nkey = %s\nca = %s\nreload_interval = 200ms\n[service:orders]\nendpoints = 127.0.0.2:%s\ntls = mtls\n' \
    "$C/web.pem" "$C/web.key" "$TMP/trust.pem" "$port" > "$TMP/trust.ini"
cat > "$TMP/trust.py" <<'PY'
import os, socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
def get():
    with socket.create_connection(("orders", port), timeout=5) as s:
        s.sendall(b"GET /secret-file HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                return data
            data += d
for _ in range(3):                     # a full handshake, then resumptions
    assert b"TOPSECRET-ANSWER" in get()
open(tmp + "/trust.asked", "w").close()
deadline = time.time() + 20
while not os.path.exists(tmp + "/trust.rotated") and time.time() < deadline:
    time.sleep(0.05)
try:
    get()
    sys.exit("a connection after the trust changed succeeded")
except ConnectionResetError:
    pass
PY
MESHIM_CONFIG=$TMP/trust.ini shimmed python3 "$TMP/trust.py" "$port" "$TMP" 2> "$TMP/trust.err" &
client=$!
PIDS+=($client)
for i in $(seq 1 100); do [ -e "$TMP/trust.asked" ] && break; kill -0 $client 2>/dev/null || break; sleep 0.1; done
[ -e "$TMP/trust.asked" ] || fail "trust rotation: the client did not get its first answers: $(grep -v debug "$TMP/trust.err" | tail -3)"
r=$(grep -c "session resumed" "$TMP/trust.err")
cp "$TMP/pki2/ca.pem" "$TMP/trust.pem.new" && mv "$TMP/trust.pem.new" "$TMP/trust.pem"
for i in $(seq 1 100); do grep -q "identity reloaded" "$TMP/trust.err" && break; sleep 0.1; done
grep -q "identity reloaded" "$TMP/trust.err" || fail "trust rotation: no reload: $(grep -v debug "$TMP/trust.err" | tail -3)"
touch "$TMP/trust.rotated"
wait $client || fail "trust rotation: $(grep -v "^meshim\[" "$TMP/trust.err" | tail -3)"
[ "$r" -ge 1 ] || fail "trust rotation: no session resumed before the change: $(tail -3 "$TMP/trust.err")"
grep -q "peer certificate not accepted" "$TMP/trust.err" ||
    fail "trust rotation: no full handshake refused after the change: $(grep -v debug "$TMP/trust.err" | tail -3)"
[ "$(grep -c "session resumed" "$TMP/trust.err")" -eq "$r" ] || fail "trust rotation: a session was resumed after the change"
ok "trust rotated under a running client: sessions resumed before ($r), none after; the server, no longer vouched for, refused"

# --- no OpenSSL symbol exported; OpenSSL loaded only when needed ------------
if nm -D --defined-only "$MESHIM_LIB" | grep -qiE ' (SSL_|EVP_|OPENSSL_|X509_|CRYPTO_)'; then
    fail "OpenSSL symbols exported"
fi
ldd "$MESHIM_LIB" | grep -q "libssl\|libcrypto" && fail "the library needs a shared OpenSSL"
exported=$(nm -D --defined-only "$ROOT/$BUILD/tls-module.so" | awk '{print $3}' | grep -v '^_' | tr '\n' ' ')
[ "$exported" = "meshim_tls_module " ] || fail "the TLS module exports more than its table: $exported"
# A program without mTLS never maps it; one with mTLS maps it when a
# connection needs it (or before it drops privileges: t_privileges), from
# the file a user's processes share (t_tls_module_shared) or a private copy.
maps=$(env -u MESHIM_CONFIG MESHIM_SERVICES=x=127.0.0.2:1 LD_PRELOAD="$MESHIM_PRELOAD" python3 -c 'print(open("/proc/self/maps").read())')
echo "$maps" | grep -qE "meshim-tls|/tls-module-" && fail "the TLS module was loaded by a program without mTLS"
maps=$(MESHIM_CONFIG=$TMP/direct.ini shimmed python3 -c '
import urllib.request
urllib.request.urlopen("http://orders:'"$port"'/secret-file", timeout=20).read()
print(open("/proc/self/maps").read())')
echo "$maps" | grep -qE "memfd:meshim-tls|/(lib)?(tls-module|meshim-tls)-[0-9a-f]+\.so" || fail "the TLS module is not loaded by an mTLS connection"
ok "OpenSSL linked into a module of its own, loaded only for mTLS; nothing of it exported"

# --- health_check = http over mTLS ------------------------------------------
# The checks of a tls = mtls service go over mTLS too, from the mesh's own
# TLS client (the server's identity checked): its strict ports serve them,
# and no byte of one is plaintext on the wire. Server B, strict too, has no
# /healthz (404): it is taken out; A (through the tap) answers 200.
mkdir -p "$TMP/wwwb"
echo A > "$TMP/www/who"; echo ok > "$TMP/www/healthz"; echo B > "$TMP/wwwb/who"
tls_ini "$TMP/server-b.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server-b.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u -m http.server --bind 127.0.0.3 --directory "$TMP/wwwb" "$port" > "$TMP/server-b.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.3 "$port"
tls_ini "$TMP/checked.ini" web \
    "[service:checked]" "endpoints = 127.0.0.1:$tap, 127.0.0.3:$port" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" "lb = round_robin" "retries = 0" \
    "health_check = http" "health_path = /healthz" "health_interval = 100ms" "health_timeout = 2s" \
    "healthy_threshold = 1" "unhealthy_threshold = 1"
# First, a process of the service without an identity of its own: it
# makes no check. Its probes would all fail for its own fault, and their
# verdicts go into the host's table that every process's picks read; with
# no other checker yet it holds the leases, and with unhealthy_threshold =
# 1 its first round (at once) would take every endpoint out.
sed -e "s|^cert = .*|cert = $TMP/no-such-cert.pem|" "$TMP/checked.ini" > "$TMP/checked-noid.ini"
MESHIM_CONFIG=$TMP/checked-noid.ini shimmed python3 -c '
import socket, sys, time
socket.getaddrinfo("checked", int(sys.argv[1])); time.sleep(30)' "$port" 2> "$TMP/hc-noid.err" &
noid=$!
PIDS+=($noid)
for _ in $(seq 1 100); do grep -q "health checks not made\|is down" "$TMP/hc-noid.err" && break; sleep 0.1; done
kill "$noid"; wait "$noid" 2>/dev/null
grep -q "checked: health checks not made until this process has a usable mTLS identity: \[tls\] cert $TMP/no-such-cert.pem" \
    "$TMP/hc-noid.err" || fail "no word of the checks not made: $(grep -v debug "$TMP/hc-noid.err" | tail -3)"
grep "is down" "$TMP/hc-noid.err" && fail "a process without an identity took endpoints out by its checks"
ok "health_check = http over mTLS in a process without an identity: no check made, nothing taken out of the host's table"
MESHIM_CONFIG=$TMP/checked.ini shimmed python3 - "$port" "$TMP/server-b.log" > "$TMP/hc.out" 2> "$TMP/hc.err" <<'PY' \
    || fail "http checks over mTLS: $(grep -v debug "$TMP/hc.err" | tail -3)"
import socket, sys, time, urllib.request
port, blog = int(sys.argv[1]), sys.argv[2]
socket.getaddrinfo("checked", port)         # the checks start here
for _ in range(300):                        # B's 404s, as B's server logged them (bounded: 30 s)
    if sum('"GET /healthz HTTP/1.1" 404' in l for l in open(blog)) >= 2: break
    time.sleep(0.1)
else:
    sys.exit("B never answered a check")
for _ in range(20):
    print(urllib.request.urlopen("http://checked:%d/who" % port, timeout=5).read().decode().strip())
PY
[ "$(sort "$TMP/hc.out" | uniq -c | awk '{print $1 $2}')" = "20A" ] ||
    fail "http checks over mTLS: B (404) still got requests: $(sort "$TMP/hc.out" | uniq -c | tr '\n' ' ')"
grep -q "checked: endpoint 127.0.0.3:$port is down (health check): GET /healthz answered 404" "$TMP/hc.err" ||
    fail "http checks over mTLS: no down line for B: $(grep -v debug "$TMP/hc.err" | tail -3)"
grep -q '"GET /healthz HTTP/1.1" 200' "$TMP/server.log" || fail "http checks over mTLS: A never saw one"
grep -q "checked: endpoint 127.0.0.1:$tap is down" "$TMP/hc.err" && fail "http checks over mTLS: A (200) marked down"
grep -aq "healthz" "$TMP/wire.up" "$TMP/wire.down" && fail "a health check crossed the wire in plaintext"
ok "health_check = http over mTLS: B's strict port answered its checks 404 and B got 0 of 20; A's 200 through the tap, no plaintext on the wire"
