# Sourced by every kernel TLS test (run inside user-mode Linux by make
# test-ktls): the integration tests' helpers, a check that this kernel has
# TLS, and a test PKI in $C (tests/integration/certs.sh).
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$ROOT/tests/integration/certs.sh"
[ -r /proc/net/tls_stat ] || fail "no kernel TLS here: run inside user-mode Linux (make test-ktls)"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
