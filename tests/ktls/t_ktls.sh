# Kernel TLS between two meshed programs (inside user-mode Linux: make
# test-ktls). A meshed asyncio server on a strict port, a meshed python3
# client by service name through an unmeshed recording tap:
# - blocking, timeout and asyncio clients, a server that speaks first,
#   half-close both ways, fork after the hand-off, 32 MB each way: all
#   with kernel TLS at both ends (/proc/net/tls_stat, the access log);
# - the wire carries TLS records only, and no alert: neither end sends
#   close_notify, and FIN reads as EOF (no EIO) after the hand-off;
# - session tickets are read before the hand-off (resumed, and still read);
# - the counters say how each connection went on;
# - resumption = psk-only at both ends: resumed without a key exchange, and
#   still handed to kernel TLS.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
gport=$((port + 1))
tap=$(free_port)
mkdir -p "$TMP/stats"

# resumption = psk-only changes nothing for clients that do not ask for it
# (all but the last check's).
tls_ini "$TMP/server.ini" orders "resumption = psk-only" "[inbound:$port]" "tls = strict" "[inbound:$gport]" "tls = strict"
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/server-access.log\nstats_dir = $TMP/stats|" "$TMP/server.ini"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$port" > "$TMP/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$gport" --greet > "$TMP/greet.log" 2>&1 &
PIDS+=($!)
python3 -u "$ROOT/tests/ktls/tap.py" "$tap" 127.0.0.2 "$port" "$TMP/wire" > "$TMP/tap.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.2 "$gport"
wait_port 127.0.0.1 "$tap"

tls_ini "$TMP/client.ini" web "${GUEST_SLOW[@]}" \
    "[service:echo]" "endpoints = 127.0.0.1:$tap" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "[service:greet]" "endpoints = 127.0.0.2:$gport" "tls = mtls"
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/client-access.log\nstats_dir = $TMP/stats|" "$TMP/client.ini"
MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/client.py" "$port" 32 > "$TMP/client.out" 2> "$TMP/client.err" ||
    fail "client: $(cat "$TMP/client.out" "$TMP/client.err" | grep -v 'debug\|info')"
cat "$TMP/client.out"
CLIENT_OK=$(grep -c '^ok:' "$TMP/client.out")
[ "$CLIENT_OK" -eq 6 ] || fail "client checks: $CLIENT_OK of 6"

# The server's half-close: it got our bytes after its FIN.
wait_until "grep -q 'after-fin: still here' $TMP/server.log" || fail "server half-close: $(cat "$TMP/server.log")"
ok "half-close both ways"

# Tickets: read before the hand-off, so later connections resume.
grep -q 'session resumed' "$TMP/client.err" || fail "no session resumed: $(grep mTLS "$TMP/client.err")"
ok "sessions resumed (the tickets were read before each hand-off)"

# The access logs: every connection of both ends went to kernel TLS.
all_ktls "$TMP/client-access.log" "$TMP/server-access.log" 7
python3 - "$TMP/client-access.log" <<'PY' || fail "access logs: the bulk connection's bytes"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
assert max(l["bytes_sent"] for l in out) >= 32 << 20, out
PY
ok "access logs: tls=ktls on all 7 connections, both ends"

# The wire: whole TLS records, no plaintext, no alert record.
python3 - "$TMP"/wire.*.up "$TMP"/wire.*.down <<'PY' || fail "the wire"
import sys
# Long enough that 64 MB of ciphertext cannot hold one by chance.
markers = [b"ping None\n", b"asyncio\n", b"HALFCLOSE\n", b"still here\n", b"before fork\n",
           b"from the child\n", b"parent again\n"]
total = 0
import os
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if not os.path.getsize(path[:-5] + ".up" if path.endswith(".down") else path):
        continue                    # wait_port's probe: no ClientHello, refused
    total += len(data)
    for m in markers:
        assert m not in data, (path, m)
    i = 0
    while i < len(data):
        assert i + 5 <= len(data), (path, "a cut record header")
        kind, ver, n = data[i], data[i+1:i+3], int.from_bytes(data[i+3:i+5], "big")
        assert kind in (0x14, 0x16, 0x17), (path, i, kind)   # no 0x15: no plaintext alert
        assert ver in (b"\x03\x01", b"\x03\x03") and n <= 16384 + 256, (path, i, ver, n)
        i += 5 + n
    assert i == len(data), (path, "a cut record")
assert total > 64 << 20, total
PY
ok "the wire: TLS records only, no alert (no close_notify), $(cat "$TMP"/wire.* | wc -c) bytes"

meshim stats --prometheus --dir "$TMP/stats" > "$TMP/prom.txt"
# (The client has exited: its stats file is gone. The echo server's stays.)
grep -qx "meshim_tls_handshakes_total{process=\"python3\",pid=\"$SERVER\",direction=\"inbound\",result=\"ok\",continued=\"ktls\"} 6" "$TMP/prom.txt" ||
    fail "counters: $(grep handshakes "$TMP/prom.txt")"
ok "meshim_tls_handshakes_total: the echo server's 6 went on in kernel TLS"

# resumption = psk-only at both ends: the traffic keys of a resumption
# without a key exchange go to the kernel as well.
tls_ini "$TMP/psk.ini" web "resumption = psk-only" "${GUEST_SLOW[@]}" \
    "[service:greet]" "endpoints = 127.0.0.2:$gport" "tls = mtls"
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/psk-access.log|" "$TMP/psk.ini"
MESHIM_CONFIG=$TMP/psk.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$gport" > "$TMP/psk.out" 2> "$TMP/psk.err" <<'PY' ||
import socket, sys
for i in range(3):
    s = socket.create_connection(("greet", int(sys.argv[1])), timeout=10)
    got = b""
    while not got.endswith(b"x\n"):
        if got == b"HELLO meshim\n":
            s.sendall(b"x\n")
        d = s.recv(100)
        assert d, got
        got += d
    assert got == b"HELLO meshim\nx\n", got
    s.close()
print("3 rounds")
PY
    fail "psk-only client: $(cat "$TMP/psk.out"; grep -v 'debug' "$TMP/psk.err" | tail -3)"
n=$(grep -c "session resumed without a key exchange" "$TMP/psk.err" || true)
[ "$n" = 2 ] || fail "psk-only: $n of 2 resumptions without a key exchange: $(grep 'mTLS with' "$TMP/psk.err")"
python3 - "$TMP/psk-access.log" <<'PY' || fail "psk-only: not every connection went to kernel TLS: $(cat "$TMP/psk-access.log")"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
assert len(out) == 3 and all(l["tls"] == "ktls" and l["result"] == "ok" for l in out), out
PY
ok "resumption = psk-only: 2 resumptions without a key exchange, all 3 connections in kernel TLS"
