# protocol = http over tls = mtls: the requests of one keep-alive
# connection spread over three meshed servers (strict mTLS ports), each
# over a pooled mTLS connection (one handshake per endpoint, not one per
# request); a recording TCP relay in front of one server proves that no
# byte of a request or an answer crossed the wire in the clear; a server
# with the wrong identity and a plaintext server get no request, and the
# application gets a 503 that says why; 503s are retried elsewhere over
# mTLS. Real programs: python3's http.client and http.server, curl.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)

# ini FILE NAME ACCESS_LOG [lines]: tls_ini's, with an access log.
ini() {
    local file=$1 name=$2 log=$3
    shift 3
    tls_ini "$file" "$name" "$@"
    ini_access_log "$file" "$log"
}

# Three meshed servers with orders' identity, strict, prod workloads only;
# the server's access log says how many connections were accepted.
ini "$TMP/server.ini" orders "$TMP/server.access" \
    "[inbound:$port]" "tls = strict" "allow = spiffe://test.mesh/ns/prod/**"
for i in 2 3 4; do
    MESHIM_CONFIG=$TMP/server.ini shimmed python3 tests/helpers/http_backend.py \
        "127.0.0.$i" "$port" "b$i" "$TMP/b$i.log" > "$TMP/b$i.out" 2>&1 &
    PIDS+=($!)
done
# The impostor: same code, identity web (not orders).
tls_ini "$TMP/impostor.ini" web "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/impostor.ini shimmed python3 tests/helpers/http_backend.py \
    127.0.0.5 "$port" b5 "$TMP/b5.log" > "$TMP/b5.out" 2>&1 &
PIDS+=($!)
# A plaintext server, not meshed.
python3 tests/helpers/http_backend.py 127.0.0.6 "$port" b6 "$TMP/b6.log" > "$TMP/b6.out" 2>&1 &
PIDS+=($!)
# A meshed server that answers 503 to everything.
MESHIM_CONFIG=$TMP/server.ini shimmed python3 tests/helpers/http_backend.py \
    127.0.0.7 "$port" b7 "$TMP/b7.log" 503 > "$TMP/b7.out" 2>&1 &
PIDS+=($!)
for i in 2 3 4 5 6 7; do wait_port "127.0.0.$i" "$port"; done

# A recording relay on 127.0.0.1:$tap to b2: what went over the wire
# (a pair of files per connection, $TMP/wire.N.up and .down).
tap=$(free_port)
python3 -u tests/ktls/tap.py "$tap" 127.0.0.2 "$port" "$TMP/wire" > "$TMP/tap.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1 "$tap"

# N requests on one connection: per line the status and the answer.
cat > "$TMP/client.py" <<'PY'
import http.client, sys
host, port, n, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection(host, port, timeout=20)
for i in range(n):
    c.request("GET", path)
    r = c.getresponse()
    b = r.read().decode().strip()
    print(r.status, r.getheader("x-meshim-error") or "-", b, flush=True)
PY

ini "$TMP/client.ini" web "$TMP/client.access" \
    "[service:orders]" "protocol = http" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "endpoints = 127.0.0.1:$tap, 127.0.0.3:$port, 127.0.0.4:$port" "lb = round_robin" \
    "[service:impostor]" "protocol = http" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "endpoints = 127.0.0.5:$port" "retries = 0" \
    "[service:cleartext]" "protocol = http" "tls = mtls" "endpoints = 127.0.0.6:$port" "retries = 0" \
    "[service:flaky]" "protocol = http" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "endpoints = 127.0.0.7:$port, 127.0.0.3:$port" "lb = round_robin" "retry_on = 5xx" "retries = 2"
export MESHIM_CONFIG=$TMP/client.ini

# 1. 300 requests of one connection: 100 per endpoint, over three mTLS
#    connections (the pool), nothing in the clear.
shimmed python3 "$TMP/client.py" orders "$port" 300 /who > "$TMP/spread.out" 2> "$TMP/spread.err" ||
    fail "the client failed: $(tail -3 "$TMP/spread.err")"
[ "$(grep -c '^200 - ' "$TMP/spread.out")" = 300 ] ||
    fail "not 300 answers of 200: $(sort "$TMP/spread.out" | uniq -c | head -5) $(tail -3 "$TMP/spread.err")"
for i in 2 3 4; do
    n=$(grep -c "^GET /who" "$TMP/b$i.log" || true)
    [ "$n" = 100 ] || fail "endpoint b$i got $n of 300 requests (round robin: 100)"
done
ok "300 requests of one keep-alive connection over mTLS: 100 to each of three endpoints"

cat "$TMP"/wire.*.up > "$TMP/wire.up" 2>/dev/null
cat "$TMP"/wire.*.down > "$TMP/wire.down" 2>/dev/null
[ -s "$TMP/wire.up" ] && [ -s "$TMP/wire.down" ] || fail "nothing crossed the recording relay"
for s in "GET /who" "Host:" "b2 GET" "HTTP/1.1"; do
    grep -aq "$s" "$TMP/wire.up" "$TMP/wire.down" && fail "\"$s\" crossed the wire in the clear"
done
for f in "$TMP"/wire.*.up; do
    [ -s "$f" ] || continue     # the readiness probe's connection
    head -c 1 "$f" | od -An -tx1 | grep -q 16 || fail "a connection's first byte is not a TLS handshake record"
done
ok "the wire to b2 carried only TLS ($(wc -c < "$TMP/wire.up") bytes up, $(wc -c < "$TMP/wire.down") down)"

# One accepted connection per endpoint: the servers' access log has a line
# per connection when it ends (the client has exited: all ended). The
# readiness probes' connections, which sent no TLS, are lines of their own.
authed() { grep '"direction":"inbound".*"result":"ok"' "$TMP/server.access" 2>/dev/null; }
for _ in $(seq 1 100); do
    [ "$(authed | grep -c . || true)" -ge 3 ] && break
    sleep 0.1
done
inbound=$(authed | grep -c . || true)
[ "$inbound" = 3 ] || fail "the servers accepted $inbound mTLS connections for 300 requests (pooled: 3)"
authed | grep -q '"peer_identity":"spiffe://test.mesh/ns/prod/sa/web"' ||
    fail "the servers' connections are not from web's identity: $(head -1 "$TMP/server.access")"
[ "$(grep -c '"kind":"request"' "$TMP/client.access")" = 300 ] || fail "not 300 request lines in the client's access log"
# The application's connection's own line says its requests went through
# the engine's mTLS relay, never "tls":"none".
grep -v '"kind":"request"' "$TMP/client.access" | grep '"service":"orders"' |
    grep -q '"tls":"relay","tls_relay_why":"protocol = http"' ||
    fail "the client's connection line does not say relay: $(grep -v '"kind"' "$TMP/client.access" | head -1)"
ok "three pooled mTLS connections carried the 300 requests (servers' access log); the client's line says relay"

# 2. curl by service name.
shims curl
out=$(shimmed curl -sS --max-time 10 "http://orders:$port/curl" 2> "$TMP/curl.err") ||
    fail "curl: $out $(cat "$TMP/curl.err")"
case "$out" in b[234]\ GET\ /curl*) ;; *) fail "curl got: $out" ;; esac
ok "curl by service name over mTLS: $out"

# 3. The wrong identity and a plaintext server: 503 with the reason, and
#    neither server ever received the request.
out=$(shimmed python3 "$TMP/client.py" impostor "$port" 1 /secret 2> "$TMP/impostor.err")
case "$out" in 503\ *mTLS*spiffe://test.mesh/ns/prod/sa/web*) ;;
    *) fail "a server with the wrong identity: $out" ;; esac
[ -s "$TMP/b5.log" ] && fail "the impostor was sent a request: $(cat "$TMP/b5.log")"
ok "a server with the wrong identity gets nothing; the application reads: ${out:0:120}"

out=$(shimmed python3 "$TMP/client.py" cleartext "$port" 1 /secret 2> "$TMP/cleartext.err")
case "$out" in 503\ *mTLS*) ;; *) fail "a plaintext server: $out" ;; esac
[ -s "$TMP/b6.log" ] && fail "the plaintext server was sent a request: $(cat "$TMP/b6.log")"
ok "a plaintext server gets nothing in the clear; the application reads: ${out:0:100}"

# 4. Retries over mTLS: b7 answers 503, each GET is retried on b3.
: > "$TMP/b3.log"
out=$(shimmed python3 "$TMP/client.py" flaky "$port" 6 /r 2> "$TMP/flaky.err") ||
    fail "the flaky client: $out $(tail -3 "$TMP/flaky.err")"
[ "$(grep -c '^200 - b3 GET /r' <<< "$out")" = 6 ] || fail "not six answers from b3: $out"
[ "$(grep -c '^GET /r' "$TMP/b7.log")" -ge 1 ] || fail "b7 was never tried"
ok "503s over mTLS retried elsewhere: 6 of 6 answered by b3 ($(grep -c . "$TMP/b7.log") tries on b7)"

# 5. A reload that changes the service's identity: the connection pooled
#    under the old one carries no further request. One python3 process
#    asks b3 once (its connection pooled), the INI then pins another
#    identity, and the same process's next request (a new connection of
#    its own) gets 503 from the mesh: b3 is not the identity now asked
#    for. Before, the pooled connection carried it to b3.
cat > "$TMP/pinned.py" <<'PY'
import http.client, os, sys, time
port, go = int(sys.argv[1]), sys.argv[2]
def get(path):
    c = http.client.HTTPConnection("pinned", port, timeout=20)
    c.request("GET", path)
    r = c.getresponse()
    print(r.status, r.getheader("x-meshim-error") or "-", r.read().decode().strip(), flush=True)
    c.close()
get("/before")
deadline = time.monotonic() + 20
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.01)
get("/after")
PY
pinned_ini() {   # pinned_ini IDENTITY: the INI, replaced whole (rename) as an agent does
    ini "$TMP/pinned.ini.tmp" web "$TMP/pinned.access" "reload_interval = 200ms" \
        "[service:pinned]" "protocol = http" "tls = mtls" "identity = $1" \
        "endpoints = 127.0.0.3:$port" "retries = 0"
    mv "$TMP/pinned.ini.tmp" "$TMP/pinned.ini"
}
pinned_ini spiffe://test.mesh/ns/prod/sa/orders
: > "$TMP/b3.log"
MESHIM_CONFIG=$TMP/pinned.ini shimmed python3 "$TMP/pinned.py" "$port" "$TMP/pinned.go" \
    > "$TMP/pinned.out" 2> "$TMP/pinned.err" &
pinned=$!
PIDS+=($pinned)
wait_until "grep -q '^200 ' '$TMP/pinned.out'" || fail "the first request was not answered: $(cat "$TMP/pinned.out" "$TMP/pinned.err")"
pinned_ini spiffe://test.mesh/ns/prod/sa/billing
wait_until "grep -q 'reloaded' '$TMP/pinned.err'" || fail "the INI was not reloaded: $(cat "$TMP/pinned.err")"
touch "$TMP/pinned.go"
wait "$pinned" || fail "the pinned client failed: $(cat "$TMP/pinned.err")"
grep -q '^503 .*mTLS.*spiffe://test.mesh/ns/prod/sa/billing' "$TMP/pinned.out" ||
    fail "after the reload the request was not refused for the identity: $(cat "$TMP/pinned.out")"
grep -q 'GET /after' "$TMP/b3.log" && fail "b3 was sent the request after the identity changed: $(cat "$TMP/b3.log")"
ok "a reload to another identity retires the pooled connection: $(tail -1 "$TMP/pinned.out" | cut -c1-110)"
