# Sourced by every kernel TLS test (run inside user-mode Linux by make
# test-ktls): the integration tests' helpers, a check that this kernel has
# TLS, and a test PKI in $C (tests/integration/certs.sh): a copy of
# $KTLS_PKI when make test-ktls made one on the host (where openssl runs
# many times faster than in the guest), else made here.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
. "$ROOT/tests/integration/certs.sh"
[ -r /proc/net/tls_stat ] || fail "no kernel TLS here: run inside user-mode Linux (make test-ktls)"
# This guest's kernel has only its C AES, so a meshed client would offer
# ChaCha20-Poly1305 first (meshim/kcipher.h). The tests run AES-GCM, the
# suite of hosts with AES instructions, by showing the shim such a host's
# /proc/crypto; t_ktls_cipher takes the guest's own.
export MESHIM_KTLS_PROC_CRYPTO=$ROOT/tests/ktls/proc-crypto-aesni
C=$TMP/pki
if [ -n "${KTLS_PKI:-}" ]; then
    cp -a "$KTLS_PKI" "$C" || fail "cannot copy the test certificates from $KTLS_PKI"
else
    make_certs "$C" || fail "cannot make the test certificates"
fi

# A client's [defaults] in these tests: the guest's one vCPU on a busy host
# can take more than connect_timeout's 1 s for a handshake (1.1 to 1.4 s
# seen while the host built the sanitizer builds beside it), and such an
# attempt is reported late and finishes its handshake in the relay ("A
# server that has not accepted yet" in README), which a test that asserts
# kernel TLS on every connection reads as a failure. Lines for tls_ini,
# after the [tls] lines and before the first [service:...].
GUEST_SLOW=("[defaults]" "connect_timeout = 10s")

# all_ktls CLIENT_LOG SERVER_LOG N: once the server's access log has N
# inbound lines, the client's N connections and the server's answered ones
# all went to kernel TLS (none relayed, no reason given).
all_ktls() {
    wait_until "[ \"\$(grep -c '\"inbound\"' '$2' 2>/dev/null)\" -ge $3 ]"
    python3 - "$1" "$2" "$3" <<'PY' || fail "access logs: not kernel TLS at both ends"
import json, sys
n = int(sys.argv[3])
out = [json.loads(l) for l in open(sys.argv[1])]
inb = [json.loads(l) for l in open(sys.argv[2]) if '"result":"ok"' in l]
assert len(out) == n and all(l["tls"] == "ktls" and l["result"] == "ok" for l in out), out
assert len(inb) >= n and all(l["tls"] == "ktls" for l in inb), inb
assert all("tls_relay_why" not in l for l in out + inb)
PY
}
