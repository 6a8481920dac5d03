# Programs that close descriptors they never opened (daemons after fork,
# close-all loops, shells redirecting onto fixed numbers) must not take the
# shim's own from under it: had they, the engine would wait on, or write
# its wake-up into, the program's next file, and mTLS would hang.
# A python3 client, relaying over mTLS (the engine and its descriptors
# live), closes every descriptor with close_range, then its fork child
# does the same; both go on calling the service and writing files, whose
# contents are checked. dup2 onto a number the shim holds fails with EBUSY.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
mkdir -p "$TMP/www"; echo "hello" > "$TMP/www/index.html"
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
serve_www "$TMP/server.ini" "$port" "$TMP/server.log"
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls"

out=$(MESHIM_CONFIG=$TMP/client.ini shimmed timeout 60 python3 "$ROOT/tests/helpers/closeall.py" orders "$port" "$TMP" 2> "$TMP/err") ||
    fail "closes everything: $(grep -v '^meshim\[' "$TMP/err" | tail -5)"
[ "$out" = ok ] || fail "closes everything: $out"
grep -q "dup2 onto descriptor [0-9]* refused (EBUSY): the mesh holds that number" "$TMP/err" ||
    fail "no line for the refused dup2: $(cat "$TMP/err")"
ok "python3 closed every descriptor (itself, then its fork child) mid-life over mTLS: 30 more calls, 24 files intact; dup2 onto the mesh's descriptor refused"
