# Sourced by every kernel TLS test (run inside user-mode Linux by make
# test-ktls): the integration tests' helpers, a check that this kernel has
# TLS, and a test PKI in $C (tests/integration/certs.sh): a copy of
# $KTLS_PKI when make test-ktls made one on the host (where openssl runs
# many times faster than in the guest), else made here.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$ROOT/tests/integration/certs.sh"
[ -r /proc/net/tls_stat ] || fail "no kernel TLS here: run inside user-mode Linux (make test-ktls)"
C=$TMP/pki
if [ -n "${KTLS_PKI:-}" ]; then
    cp -a "$KTLS_PKI" "$C" || fail "cannot copy the test certificates from $KTLS_PKI"
else
    make_certs "$C" || fail "cannot make the test certificates"
fi
