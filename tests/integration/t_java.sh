# The JVM under the shim, at both ends of mTLS (Debian's OpenJDK 17; the
# JDK's own clients and server, tests/helpers/java):
# - a server (com.sun.net.httpserver) on two strict [inbound] ports: the
#   client's identity checked, plaintext refused;
# - HttpURLConnection (the JDK connects non-blocking and polls) and
#   HttpClient (a selector thread, 40 requests at once) by service name,
#   over mTLS, every answer whole;
# - the same HttpClient on a protocol = http service over mTLS: its requests
#   balanced over both ports, each in the access log;
# - meanwhile the JVM takes SIGSEGV for its own ends: null checks compiled
#   as loads that fault (800,000 NullPointerExceptions, most raised by
#   HotSpot's handler until it recompiles the check; strace counted 22,532
#   SIGSEGVs in a run of a quarter of these requests), safepoints at each
#   System.gc(). The shim sees the JVM's handlers (it interposes sigaction)
#   and must pass the faults on at once; a client that dies or hangs
#   instead fails here.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

# The JVM does not start with an ASan runtime preloaded (its own signal
# handlers and stack guard pages); the plain build runs this in full.
under_asan && { echo "skip: the JVM does not run with an ASan runtime preloaded (runs in the plain build)"; exit 77; }
command -v javac >/dev/null || fail "javac is not installed (openjdk-17-jdk-headless; make deps)"
javac -d "$TMP/classes" tests/helpers/java/*.java > "$TMP/javac.log" 2>&1 || fail "javac: $(cat "$TMP/javac.log")"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
p1=$(free_port) p2=$(free_port)
tls_ini "$TMP/server.ini" orders \
    "[inbound:$p1]" "tls = strict" "allow = spiffe://test.mesh/ns/prod/**" \
    "[inbound:$p2]" "tls = strict" "allow = spiffe://test.mesh/ns/prod/**"
ini_access_log "$TMP/server.ini" "$TMP/server-access.log"
shimmed MESHIM_CONFIG="$TMP/server.ini" java -cp "$TMP/classes" MeshServer "$p1" "$p2" \
    > "$TMP/server.out" 2> "$TMP/server.err" &
PIDS+=($!)
wait_port 127.0.0.1 "$p1"
wait_port 127.0.0.1 "$p2"

# Plaintext to a strict port: refused, nothing reaches the JVM's handler.
out=$(curl -sS --max-time 5 "http://127.0.0.1:$p1/plain" 2>&1) &&
    fail "plaintext to a strict port was answered: $out"
grep -q "/plain" "$TMP/server-access.log" && fail "the plaintext request was logged as served"

tls_ini "$TMP/client.ini" web \
    "[service:orders]" "endpoints = 127.0.0.1:$p1" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "[service:orders-http]" "protocol = http" "lb = round_robin" \
    "endpoints = 127.0.0.1:$p1, 127.0.0.1:$p2" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
ini_access_log "$TMP/client.ini" "$TMP/client-access.log"

# run NAME URL: MeshClient's 40 + 40 requests; its output in $TMP/NAME.out.
run() {
    timeout 120 env LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/client.ini" \
        java -cp "$TMP/classes" MeshClient "$2" 40 > "$TMP/$1.out" 2> "$TMP/$1.err" ||
        fail "$1: MeshClient failed (status $?): $(cat "$TMP/$1.out"; tail -5 "$TMP/$1.err")"
    grep -qx "urlconnection 40" "$TMP/$1.out" && grep -qx "httpclient 40" "$TMP/$1.out" ||
        fail "$1: not every request answered: $(cat "$TMP/$1.out")"
    nulls=$(awk '$1 == "nulls" {print $2}' "$TMP/$1.out")
    [ "${nulls:-0}" -eq 800000 ] || fail "$1: the JVM caught ${nulls:-no} of 800000 null checks"
}

run tcp "http://orders:$p1"
# Every connection over mTLS, the client's identity seen by the server.
served=$(grep -c '"direction":"inbound".*"result":"ok".*"peer_identity":"spiffe://test.mesh/ns/prod/sa/web"' \
    "$TMP/server-access.log")
[ "$served" -ge 2 ] || fail "the server logged $served mTLS connections from web: $(tail -3 "$TMP/server-access.log")"
grep '"service":"orders",' "$TMP/client-access.log" | grep -v '"tls":"relay"' | grep -q . &&
    fail "a connection to orders not over mTLS: $(grep '"service":"orders",' "$TMP/client-access.log" | grep -v '"tls":"relay"' | head -1)"
ok "HttpURLConnection and HttpClient (40 at once) by name over mTLS to the JDK's server: 80 answered, $served connections with web's identity; 800000 NullPointerExceptions from faulting null checks caught; plaintext refused"

run http "http://orders-http:$p1"
both=$(printf '%s\n' "$p1" "$p2" | LC_ALL=C sort | paste -sd' ')
grep -qx "ports $both" "$TMP/http.out" || fail "protocol = http: the answers came from $(grep '^ports' "$TMP/http.out"), not both ports"
logged=$(grep -c '"kind":"request".*"service":"orders-http".*"status":200' "$TMP/client-access.log")
[ "$logged" -eq 80 ] || fail "protocol = http: $logged request lines for 80 requests"
for p in "$p1" "$p2"; do
    n=$(grep -c "\"kind\":\"request\".*\"endpoint\":\"127.0.0.1:$p\"" "$TMP/client-access.log")
    [ "$n" -ge 20 ] || fail "protocol = http, round robin: only $n of 80 requests to port $p"
done
ok "protocol = http over mTLS: the JDK's 80 requests balanced over both ports, each logged"

grep -q "error\|exception" "$TMP/server.err" && fail "the server: $(head -3 "$TMP/server.err")"
ok "the JDK's server: no error"
