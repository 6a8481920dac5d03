# A server's identity is read when it listens on an [inbound:PORT] port
# with TLS (mesh/mtls.h, inbound_listening), as a sidecar loads its
# certificates when it starts: the first client's handshake does not wait
# for the TLS module and the identity, and the workers a server forks after
# it listens start with them loaded instead of each reading them at its
# first connection.
# - nginx with two workers (reuseport spreads the connections over both):
#   the master loads the identity once, before any client; after 20 meshed
#   requests, served by both workers, it is still the only load.
# - A strict port whose certificate is not there yet when the server
#   listens (cert-manager writes it later): the error is said at once, the
#   watcher started then loads the files when they come, and a client gets
#   its answer.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
loads() { grep -c "\[tls\] identity loaded from" "$1" || true; }
# get INI URL N: N GETs of URL, each on a new connection, by python3 under
# the shim with INI (curl cannot run with an ASan runtime: lib.sh, shims);
# prints the bodies, one a line.
get() {
    MESHIM_CONFIG=$1 shimmed python3 -c '
import sys, urllib.request
for _ in range(int(sys.argv[2])):
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())' "$2" "$3"
}

# --- nginx: the master reads the identity; its workers inherit it ----------
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
ini_access_log "$TMP/server.ini" "$TMP/server.access"
NGINX_WORKERS=2 start_nginx srv "server { listen 127.0.0.1:$port reuseport; location / { return 200 \"ok\\n\"; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/server.ini"
master=${PIDS[-1]}
wait_port 127.0.0.1 "$port"
wait_until "grep -q 'identity loaded from' '$TMP/srv/stderr'" ||
    fail "nginx listened and no identity was loaded before a client came: $(cat "$TMP/srv/stderr")"
grep "identity loaded from" "$TMP/srv/stderr" | grep -q "^meshim\[$master\]:" ||
    fail "the identity was loaded, but not by the master ($master): $(grep 'identity loaded' "$TMP/srv/stderr")"

tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.1:$port" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
out=$(get "$TMP/client.ini" "http://orders:$port/" 20 2> "$TMP/client.err") ||
    fail "20 requests over mTLS: $(tail -3 "$TMP/client.err")"
[ "$(grep -c '^ok$' <<< "$out")" = 20 ] || fail "20 requests over mTLS: got \"$out\""
wait_until "[ \$(grep -c '\"result\":\"ok\"' '$TMP/server.access' 2>/dev/null || echo 0) -ge 20 ]" ||
    fail "the server logged $(grep -c '"result":"ok"' "$TMP/server.access") of 20 connections"
workers=$(python3 -c '
import json, sys
print(len({json.loads(l)["pid"] for l in open(sys.argv[1]) if l.startswith("{")}))' "$TMP/server.access")
[ "$workers" -ge 2 ] || fail "the 20 connections went to $workers worker(s), not both"
n=$(loads "$TMP/srv/stderr")
[ "$n" = 1 ] || fail "the identity was loaded $n times (once per worker?): $(grep 'identity loaded' "$TMP/srv/stderr")"
ok "nginx (2 workers): the master loaded the identity as it listened; 20 requests on both workers, no other load"

# --- the certificate comes after the server listens ------------------------
late=$TMP/late
mkdir -p "$late" "$TMP/www"
echo hello > "$TMP/www/index.html"
port2=$(free_port)
printf '[meshim]\nlog_level = info\n[tls]\ncert = %s\nkey = %s\nca = %s\nreload_interval = 200ms\n[inbound:%s]\ntls = strict\n' \
    "$late/orders.pem" "$late/orders.key" "$C/ca.pem" "$port2" > "$TMP/late.ini"
serve_www "$TMP/late.ini" "$port2" "$TMP/late.log"
wait_until "grep -q 'connections that need mTLS fail' '$TMP/late.log'" ||
    fail "no error at listen for the missing certificate: $(cat "$TMP/late.log")"
[ "$(loads "$TMP/late.log")" = 0 ] || fail "an identity was loaded without its files: $(cat "$TMP/late.log")"
cp "$C/orders.pem" "$C/orders.key" "$late/"
wait_until "grep -q 'identity reloaded from $late/orders.pem' '$TMP/late.log'" ||
    fail "the certificate came and was not loaded: $(tail -3 "$TMP/late.log")"
tls_ini "$TMP/client2.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port2" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
out=$(get "$TMP/client2.ini" "http://orders:$port2/" 1 2> "$TMP/client2.err") ||
    fail "no answer once the certificate came: $(tail -3 "$TMP/client2.err")"
[ "$out" = hello ] || fail "got \"$out\" once the certificate came"
ok "a certificate missing at listen: said at once, loaded by the watcher when it came, then served"
