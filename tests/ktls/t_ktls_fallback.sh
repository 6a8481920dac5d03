# Kernel TLS falls back to the relay, per connection, with the reason in
# the access log (inside user-mode Linux: make test-ktls), and every such
# connection still works both ways and ends cleanly:
# - a peer that is not meshim: openssl s_server -Verify as the server,
#   openssl s_client as the client;
# - the other end has ktls = off (mixed ends);
# - a server that accepts on a blocking socket (thread per connection).
. "$(dirname "$0")/lib.sh"

ep=$(free_port)           # asyncio echo, ktls auto
bp=$((ep + 1))            # blocking echo
sp=$((ep + 2))            # openssl s_server

tls_ini "$TMP/server.ini" orders "[inbound:$ep]" "tls = strict" "[inbound:$bp]" "tls = strict"
sed -i "s|^log_level = info|log_level = warn\naccess_log = $TMP/server-access.log|" "$TMP/server.ini"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$ep" > "$TMP/echo.log" 2>&1 &
PIDS+=($!)
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/blocking_server.py" 127.0.0.2 "$bp" > "$TMP/blocking.log" 2>&1 &
PIDS+=($!)
openssl s_server -accept "127.0.0.2:$sp" -cert "$C/orders.pem" -key "$C/orders.key" \
    -CAfile "$C/ca.pem" -Verify 2 -verify_return_error -rev -quiet > "$TMP/s_server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$ep"
wait_port 127.0.0.2 "$bp"
wait_port 127.0.0.2 "$sp"

client_ini() {     # client_ini FILE KTLS
    tls_ini "$1" web "ktls = $2" "${GUEST_SLOW[@]}" \
        "[service:echo]" "endpoints = 127.0.0.2:$ep" "tls = mtls" \
        "[service:blocking]" "endpoints = 127.0.0.2:$bp" "tls = mtls" \
        "[service:sserver]" "endpoints = 127.0.0.2:$sp" "tls = mtls"
    sed -i "s|^log_level = info|log_level = warn\naccess_log = $TMP/client-access.log|" "$1"
}
client_ini "$TMP/auto.ini" auto
client_ini "$TMP/off.ini" off
# [tls] must hold ktls: tls_ini writes [tls] first, then our lines.
grep -q '^ktls = off' "$TMP/off.ini" || fail "client ini"

# 1. both ends auto: kernel TLS (the reference).
MESHIM_CONFIG=$TMP/auto.ini shimmed python3 "$ROOT/tests/ktls/echo_once.py" echo "$ep" > /dev/null ||
    fail "auto to auto"
# 2. mixed ends: this client has ktls = off.
MESHIM_CONFIG=$TMP/off.ini shimmed python3 "$ROOT/tests/ktls/echo_once.py" echo "$ep" > /dev/null ||
    fail "off to auto"
# 3. a thread-per-connection server (blocking accept).
MESHIM_CONFIG=$TMP/auto.ini shimmed python3 "$ROOT/tests/ktls/echo_once.py" blocking "$bp" > /dev/null ||
    fail "to a blocking server"
# 4. a server that is not meshim: openssl s_server (-rev answers each line reversed).
MESHIM_CONFIG=$TMP/auto.ini shimmed python3 - "$sp" <<'PY' || fail "to openssl s_server"
import socket, sys
s = socket.create_connection(("sserver", int(sys.argv[1])), timeout=10)
s.sendall(b"abc\n")
got = b""
while not got.endswith(b"\n"):
    d = s.recv(100)
    assert d, got
    got += d
assert got.strip() == b"cba", got
s.close()
PY
# 5. a client that is not meshim: openssl s_client with web's certificate.
# Its input stays open until the echo is back (or 30 s): s_client quits at
# the end of its input, and a fixed wait before that end lost the echo on a
# slow guest.
got=$(python3 - "$ep" "$C" "$TMP/s_client.err" <<'PY'
import os, select, subprocess, sys, time
port, pki, err = sys.argv[1:]
p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.2:" + port, "-quiet", "-no_ign_eof",
                      "-cert", pki + "/web.pem", "-key", pki + "/web.key", "-CAfile", pki + "/ca.pem"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(err, "w"))
p.stdin.write(b"from s_client\n")
p.stdin.flush()
got, deadline = b"", time.monotonic() + 30
while not got.endswith(b"\n") and select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))[0]:
    chunk = os.read(p.stdout.fileno(), 100)
    if not chunk:
        break
    got += chunk
p.stdin.close()
try:
    p.wait(10)
except subprocess.TimeoutExpired:
    p.kill()
print(got.decode(errors="replace").strip())
PY
)
[ "$got" = "from s_client" ] || fail "openssl s_client to the meshed server: '$got' $(cat "$TMP/s_client.err")"

wait_until '[ "$(grep -c "\"result\":\"ok\"" "$TMP/server-access.log" 2>/dev/null)" -ge 4 ]'
python3 - "$TMP/client-access.log" "$TMP/server-access.log" "$ep" "$bp" <<'PY' || fail "access logs: $(cat "$TMP/client-access.log" "$TMP/server-access.log")"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
inb = [json.loads(l) for l in open(sys.argv[2]) if '"result":"ok"' in l]
ep, bp = sys.argv[3], sys.argv[4]
assert [l["result"] for l in out] == ["ok"] * 4, out
tls = [(l["tls"], l.get("tls_relay_why", "")) for l in out]
assert tls[0] == ("ktls", ""), tls
assert tls[1] == ("relay", "[tls] ktls = off"), tls
assert tls[2][0] == "relay" and "did not agree" in tls[2][1], tls
assert tls[3][0] == "relay" and "did not agree" in tls[3][1], tls
by_port = {}
for l in inb:
    by_port.setdefault(l["service"].split(":")[1], []).append((l["tls"], l.get("tls_relay_why", "")))
assert by_port[ep][0] == ("ktls", ""), by_port
assert by_port[ep][1][0] == "relay" and "did not agree" in by_port[ep][1][1], by_port
assert by_port[ep][2][0] == "relay" and "did not agree" in by_port[ep][2][1], by_port   # s_client
assert by_port[bp] == [("relay", "the server accepts on a blocking socket")], by_port
PY
ok "fallbacks with their reasons: ktls = off, a blocking server, openssl s_server, openssl s_client"
