# [tls] resumption = psk-only (issue 19, part 3, opt-in): a resumed handshake
# between two ends that both allow it goes without a key exchange (no
# X25519 at either end); every other handshake keeps it. Seen on the wire: a
# tap records the server's bytes and server_hello.py reads each ServerHello.
# - meshed client and server, both psk-only: the first connection is a full
#   handshake, the resumed ones carry no key share;
# - a meshed client without the key (resumption = ecdhe): resumed with one;
# - openssl s_client -allow_no_dhe_kex to the psk-only server: resumed
#   without a key exchange; without the option, or listing the group the
#   server uses as its decoy, with one; a session whose suite hashes unlike
#   the suite the server now picks cannot resume: a full handshake, never a
#   failed one (the server offers the decoy only when the resumption is sure);
# - a server without the key: the psk-only client resumes with a key exchange.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "resumption = psk-only" "[inbound:$port]" "tls = strict"
start_nginx srv "server { listen 127.0.0.1:$port; location / { return 200 \"ok\\n\"; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/server.ini"
wait_port 127.0.0.1 "$port"

# --- meshed ends, through a tap ----------------------------------------------
# handshakes TAP_PREFIX N: waits for N recorded handshakes, prints how each
# went, counted ("1 full 9 psk-only"); wait_port's own connection has none.
handshakes() {
    wait_until "[ \$(python3 '$ROOT/tests/helpers/server_hello.py' '$1'.*.down | grep -vc none) -ge $2 ]" ||
        fail "the tap recorded fewer than $2 handshakes: $(python3 "$ROOT/tests/helpers/server_hello.py" "$1".*.down | sort | uniq -c)"
    python3 "$ROOT/tests/helpers/server_hello.py" "$1".*.down | grep -v none | sort | uniq -c | awk '{print $1, $2}' | paste -sd' '
}
# ten RESUMPTION TAP_PORT OUT: one python3 process makes ten connections to
# the server through the tap, each answered.
ten() {
    tls_ini "$TMP/client-$1.ini" web "resumption = $1" \
        "[service:orders]" "endpoints = 127.0.0.1:$2" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders"
    MESHIM_LOG_LEVEL=debug MESHIM_CONFIG=$TMP/client-$1.ini shimmed python3 - > "$3.out" 2> "$3.err" <<'PY' ||
import urllib.request
for i in range(10):
    assert urllib.request.urlopen("http://orders/", timeout=20).read() == b"ok\n"
print("10 answers")
PY
        fail "client (resumption = $1): $(cat "$3.out"; grep -v ': debug:' "$3.err" | tail -3)"
}
tap() {   # tap PORT PREFIX: a recording relay to the server
    python3 "$ROOT/tests/ktls/tap.py" "$1" 127.0.0.1 "$port" "$2" &
    PIDS+=($!)
    wait_port 127.0.0.1 "$1"
}

tap1=$(free_port)
tap "$tap1" "$TMP/psk"
ten psk-only "$tap1" "$TMP/psk"
got=$(handshakes "$TMP/psk" 10)
[ "$got" = "1 full 9 psk-only" ] || fail "both ends psk-only: the handshakes went $got, not 1 full 9 psk-only"
n=$(grep -c "session resumed without a key exchange" "$TMP/psk.err" || true)
[ "$n" = 9 ] || fail "the client logged $n resumptions without a key exchange, not 9"
ok "both ends psk-only: a full handshake, then 9 resumptions without a key share on the wire"

tap2=$(free_port)
tap "$tap2" "$TMP/ecdhe"
ten ecdhe "$tap2" "$TMP/ecdhe"
got=$(handshakes "$TMP/ecdhe" 10)
[ "$got" = "1 full 9 kex" ] || fail "client resumption = ecdhe: the handshakes went $got, not 1 full 9 kex"
ok "a client that keeps the key exchange: 9 resumptions, each with a key share"

# --- a standard client: openssl s_client ------------------------------------
s_client() {   # s_client OUT [options]: GET / over mTLS to the server
    local out=$1
    shift
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:$port" \
        -cert "$C/web.pem" -key "$C/web.key" -CAfile "$C/ca.pem" -ign_eof "$@" > "$out" 2>&1
    grep -q "200 OK" "$out" || fail "s_client $*: no answer: $(grep -E '^(New|Reused)|error|alert' "$out" | head -3)"
}
# how OUT: New, Reused with a key exchange ("Reused+kex") or Reused without.
how() {
    local h
    h=$(grep -oE "^(New|Reused), TLSv1.3" "$1" | cut -d, -f1)
    [ "$h" = Reused ] && grep -q "Server Temp Key" "$1" && h=Reused+kex
    echo "$h"
}
s_client "$TMP/s-full.out" -sess_out "$TMP/s.sess"    # s_client's first suite: AES-256-GCM-SHA384
[ "$(how "$TMP/s-full.out")" = New ] || fail "s_client's first handshake: $(how "$TMP/s-full.out")"
s_client "$TMP/s-psk.out" -sess_in "$TMP/s.sess" -allow_no_dhe_kex -groups X25519:P-256
[ "$(how "$TMP/s-psk.out")" = Reused ] || fail "s_client -allow_no_dhe_kex: $(how "$TMP/s-psk.out"), not Reused without a key exchange"
s_client "$TMP/s-dhe.out" -sess_in "$TMP/s.sess"
[ "$(how "$TMP/s-dhe.out")" = Reused+kex ] || fail "s_client without -allow_no_dhe_kex: $(how "$TMP/s-dhe.out")"
s_client "$TMP/s-decoy.out" -sess_in "$TMP/s.sess" -allow_no_dhe_kex       # its groups name ffdhe8192
[ "$(how "$TMP/s-decoy.out")" = Reused+kex ] || fail "s_client listing the decoy group: $(how "$TMP/s-decoy.out")"
s_client "$TMP/s-suite.out" -sess_in "$TMP/s.sess" -allow_no_dhe_kex -groups X25519:P-256 \
    -ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384
[ "$(how "$TMP/s-suite.out")" = New ] || fail "a SHA-384 session offered with a SHA-256 suite first: $(how "$TMP/s-suite.out")"
ok "openssl s_client: resumed without a key exchange with -allow_no_dhe_kex; with one without it or when it lists the decoy; a session of another hash: a full handshake"

# --- a server without the key -----------------------------------------------
port2=$(free_port)
tls_ini "$TMP/server2.ini" orders "[inbound:$port2]" "tls = strict"
start_nginx srv2 "server { listen 127.0.0.1:$port2; location / { return 200 \"ok\\n\"; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/server2.ini"
wait_port 127.0.0.1 "$port2"
ten psk-only "$port2" "$TMP/plainserver"
r=$(grep -c "session resumed;" "$TMP/plainserver.err" || true)
n=$(grep -c "without a key exchange" "$TMP/plainserver.err" || true)
[ "$r" = 9 ] && [ "$n" = 0 ] || fail "psk-only client, server without the key: $r resumed with a key exchange, $n without (want 9, 0)"
ok "a server without the key: the psk-only client's 9 resumptions keep the key exchange"
