# A permissive port where the kernel has TLS (inside user-mode Linux: make
# test-ktls). An event-loop server's end of the pair starts full for the
# kernel TLS hand-off, so it cannot speak first while the shim waits for
# the client's first byte; a server-first protocol's plaintext client
# (which waits for the greeting) was served only at the 3 s first-byte
# deadline, as "the server waiting too". Now, at detect_timeout, the
# server's end is emptied so that it may speak, and once it has, the
# client is plaintext ("the server spoke first"):
# - echo_server.py --greet (asyncio, speaks first), detect_timeout = 300ms:
#   a plain client reads the greeting and is echoed; the shim's line says
#   the server spoke first;
# - a meshed mTLS client to the same port speaks at once: kernel TLS at
#   both ends, the greeting over it.
. "$(dirname "$0")/lib.sh"

gp=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$gp]" "tls = permissive" "detect_timeout = 300ms"
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/server-access.log|" "$TMP/server.ini"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$gp" --greet > "$TMP/greet.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$gp"

python3 - "$gp" <<'PY' || fail "plaintext client: $(grep meshim "$TMP/greet.log" | tail -3)"
import socket, sys
s = socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
assert f.readline() == b"HELLO meshim\n"
s.sendall(b"plain\n")
assert f.readline() == b"plain\n"
PY
wait_until 'grep -q "silent for [0-9]* ms, the server spoke first: plaintext" "$TMP/greet.log"' ||
    fail "the plaintext client was not told by the server's greeting: $(grep meshim "$TMP/greet.log" | grep -v identity | tail -3)"
ok "a server-first event loop on a permissive port: its plaintext client served once the server spoke ($(grep -o 'silent for [0-9]* ms' "$TMP/greet.log" | head -1))"

tls_ini "$TMP/client.ini" web "${GUEST_SLOW[@]}" "[service:greet]" "endpoints = 127.0.0.2:$gp" "tls = mtls"
sed -i "s|^log_level = info|log_level = warn\naccess_log = $TMP/client-access.log|" "$TMP/client.ini"
MESHIM_CONFIG=$TMP/client.ini shimmed python3 - "$gp" <<'PY' || fail "mTLS client: $(tail -3 "$TMP/client-access.log" 2>/dev/null)"
import socket, sys
s = socket.create_connection(("greet", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
assert f.readline() == b"HELLO meshim\n"
s.sendall(b"tls\n")
assert f.readline() == b"tls\n"
s.close()
PY
wait_until '[ -s "$TMP/client-access.log" ]'
grep -q '"tls":"ktls"' "$TMP/client-access.log" ||
    fail "the mTLS client did not get kernel TLS: $(cat "$TMP/client-access.log")"
ok "the same port, a meshed mTLS client: kernel TLS, the greeting over it"
