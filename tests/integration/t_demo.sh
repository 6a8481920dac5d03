# make demo's script (examples/demo), as a newcomer runs it: it must end
# with "demo ok" — names, a backend killed with no failed request (retries
# and the ejection in meshim stats), mTLS with the peer's identity in the
# server's access log.
. "$(dirname "$0")/lib.sh"
[ -n "${MESHIM_PRELOAD##*libasan*}" ] || exit 77      # it runs build/meshim, not the ASan library
BUILD=$BUILD "$ROOT/examples/demo" > "$TMP/demo.out" 2>&1 || fail "make demo: $(tail -5 "$TMP/demo.out")"
last=$(tail -n 1 "$TMP/demo.out")
case $last in "demo ok:"*) ;; *) fail "the demo's last line: $last" ;; esac
grep -q "failed requests: 0" "$TMP/demo.out" || fail "the demo lost requests"
grep -q '(ejected)' "$TMP/demo.out" || fail "no ejection in the demo's stats"
grep -q '"peer_identity":"spiffe://demo.mesh/ns/demo/sa/web"' "$TMP/demo.out" || fail "no peer identity in the demo"
ok "examples/demo: $last"
