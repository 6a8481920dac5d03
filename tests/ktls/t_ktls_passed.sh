# A connect passed to another process (SCM_RIGHTS) while its TLS handshake
# is still under way, by a program that then exits (inside user-mode Linux:
# make test-ktls). The handshake ends after the pass and agrees on kernel
# TLS, but the socket cannot go on the sender's number: the receiver holds
# the placeholder's end. So the connection ends in a relay that carries the
# bytes in the clear into the kernel's TLS (dial.c, `passed`), and the
# relay goes on in a keeper once the sender has exited. Deterministic: a
# tap holds the handshake until the receiver has the descriptor.
# Checks: the receiver's bytes come back, both ends' sockets are kernel
# TLS, the wire carries TLS records only, and the client's access log says
# ktls.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
tap=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
sed -i "s|^log_level = info|log_level = warn\naccess_log = $TMP/server-access.log|" "$TMP/server.ini"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$port" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
python3 -u "$ROOT/tests/ktls/tap.py" "$tap" 127.0.0.2 "$port" "$TMP/wire" "$TMP/passed" > "$TMP/tap.log" 2>&1 &
PIDS+=($!)
wait_until "ss -ltn | grep -q '127.0.0.1:$tap '" || fail "the tap does not listen: $(cat "$TMP/tap.log")"

# One attempt (retries = 0), with room for a slow guest: the connect is
# reported when the handshake is done, and the hold is part of it.
tls_ini "$TMP/client.ini" web "[service:echo]" "endpoints = 127.0.0.1:$tap" "tls = mtls" \
    "connect_timeout = 10s" "retries = 0"
# debug: the keeper's line.
sed -i "s|^log_level = info|log_level = debug\naccess_log = $TMP/client-access.log|" "$TMP/client.ini"

tls_stat() { awk -v k="$1" '$1 == k {print $2}' /proc/net/tls_stat; }
tx0=$(tls_stat TlsTxSw)

out=$(MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 "$ROOT/tests/helpers/pass_connect.py" echo "$port" "$TMP/passed" 2> "$TMP/client.err")
[ "$out" = "echoed" ] ||
    fail "a descriptor passed mid-handshake, its sender gone: want 'echoed', got '$out': $(grep -v debug "$TMP/client.err")"
grep -q "the relays of 1 connections go on in process" "$TMP/client.err" ||
    fail "a descriptor passed mid-handshake: no keeper: $(cat "$TMP/client.err")"
tx1=$(tls_stat TlsTxSw)
[ $((tx1 - tx0)) -ge 2 ] || fail "kernel TLS at both ends: TlsTxSw went from $tx0 to $tx1: $(cat /proc/net/tls_stat)"

wait_until "[ -s '$TMP/client-access.log' ] && grep -q '\"result\":\"ok\"' '$TMP/server-access.log'" ||
    fail "no access-log lines: $(cat "$TMP/client-access.log" "$TMP/server-access.log" 2>&1)"
python3 - "$TMP/client-access.log" "$TMP/server-access.log" <<'PY' || fail "access logs: $(cat "$TMP/client-access.log" "$TMP/server-access.log")"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
inb = [json.loads(l) for l in open(sys.argv[2]) if '"result":"ok"' in l]
assert [(l["result"], l["tls"]) for l in out] == [("ok", "ktls")], out
assert [l["tls"] for l in inb] == ["ktls"], inb
PY

python3 - "$TMP"/wire.*.up "$TMP"/wire.*.down <<'PY' || fail "the wire"
import os, sys
total = 0
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if not os.path.getsize(path[:-5] + ".up" if path.endswith(".down") else path):
        continue                    # the readiness probe: no ClientHello
    total += len(data)
    assert b"ccccc" not in data, path
    i = 0
    while i < len(data):
        assert i + 5 <= len(data), (path, "a cut record header")
        kind, n = data[i], int.from_bytes(data[i+3:i+5], "big")
        assert kind in (0x14, 0x16, 0x17), (path, i, kind)
        i += 5 + n
    assert i == len(data), (path, "a cut record")
assert total > 1000, total
PY
ok "a connect passed mid-handshake, its sender gone: echoed over kernel TLS at both ends (a relay in a keeper at the client), TLS records only on the wire"
