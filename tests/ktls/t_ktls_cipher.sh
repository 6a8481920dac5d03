# Kernel TLS's cipher (inside user-mode Linux: make test-ktls). This
# guest's kernel has only its C AES (aes-generic in /proc/crypto) and takes
# ChaCha20-Poly1305 keys, so a meshed client offers ChaCha20-Poly1305
# first and both ends' kernel TLS sockets run it, where AES-GCM would cost
# the kernel more (meshim/kcipher.h). A client shown an x86 host's
# /proc/crypto (AES-NI) keeps AES-GCM first, and the server follows the
# client's order; so does a client that cannot read /proc/crypto (nothing
# known: the order stays as it was). Each case: a python3 client by
# service name to an asyncio server on a strict port, 4 MiB each way with
# its sha256 checked, each end reading its own socket's cipher (SOL_TLS),
# and the access logs.
. "$(dirname "$0")/lib.sh"
unset MESHIM_KTLS_PROC_CRYPTO       # the guest's own /proc/crypto, unless a case says

CHACHA=54 AES128=51                 # linux/tls.h: TLS_CIPHER_*
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/server-access.log|" "$TMP/server.ini"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/cipher.py" server 127.0.0.2 "$port" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"

tls_ini "$TMP/client.ini" web "${GUEST_SLOW[@]}" "[service:echo]" "endpoints = 127.0.0.2:$port" "tls = mtls"
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/client-access.log|" "$TMP/client.ini"

# run_client CASE [ENV...]: one connection; its line "client TX RX server TX RX".
run_client() {
    local case=$1
    shift
    env "$@" MESHIM_CONFIG="$TMP/client.ini" LD_PRELOAD="$MESHIM_PRELOAD" \
        python3 -u "$ROOT/tests/ktls/cipher.py" client echo "$port" 4 > "$TMP/$case.out" 2> "$TMP/$case.err" ||
        fail "$case: $(cat "$TMP/$case.out" "$TMP/$case.err" | grep -v 'debug\|info')"
    cat "$TMP/$case.out"
}

run_client chacha
grep -q "ChaCha20-Poly1305 (its AES is not accelerated) first" "$TMP/chacha.err" ||
    fail "the client's probe: $(grep 'kernel TLS' "$TMP/chacha.err")"
[ "$(cat "$TMP/chacha.out")" = "client $CHACHA $CHACHA server $CHACHA $CHACHA" ] ||
    fail "ChaCha20-Poly1305 at both ends, both ways: $(cat "$TMP/chacha.out")"
ok "a kernel with a C AES: ChaCha20-Poly1305 at both ends' kernel TLS sockets, 4 MiB each way intact"

run_client aes MESHIM_KTLS_PROC_CRYPTO="$ROOT/tests/ktls/proc-crypto-aesni"
grep -q "AES-GCM first" "$TMP/aes.err" || fail "the client's probe: $(grep 'kernel TLS' "$TMP/aes.err")"
[ "$(cat "$TMP/aes.out")" = "client $AES128 $AES128 server $AES128 $AES128" ] ||
    fail "AES-128-GCM at both ends, both ways: $(cat "$TMP/aes.out")"
ok "a client shown AES-NI keeps AES-GCM first, and the server follows it"

run_client unread MESHIM_KTLS_PROC_CRYPTO="$TMP/no-such-file"
[ "$(cat "$TMP/unread.out")" = "client $AES128 $AES128 server $AES128 $AES128" ] ||
    fail "AES-128-GCM where /proc/crypto cannot be read: $(cat "$TMP/unread.out")"
ok "a client that cannot read /proc/crypto keeps AES-GCM first"

# Both connections went to kernel TLS at both ends (not relayed).
all_ktls "$TMP/client-access.log" "$TMP/server-access.log" 3
ok "access logs: tls=ktls on all three connections, both ends"
