#!/usr/bin/env bash
# The access log's caller stacks (access_log_callers = on, libunwind opened
# at run time) and its inbound lines.
#   - a small C program whose main() calls fetch_orders(), which connects:
#     the line names fetch_orders then main, and no frame of the shim;
#   - with the option off the field is absent (and libunwind not loaded);
#   - a client refused on a strict [inbound:PORT] of a shimmed server:
#     an inbound line with result denied and flag DENY, and the counter.
. "$(dirname "$0")/lib.sh"
unset MESHIM_STATS_DIR     # its INI files name the stats folders it checks

port=$(free_port)
start_backend 2 "$port"
wait_port 127.0.0.2 "$port"
CALLERS=$ROOT/$BUILD/tests/callers
CLIENTS=()
cat > "$TMP/on.ini" <<INI
[meshim]
access_log = $TMP/on.log
access_log_callers = on
stats_dir = off
[service:orders]
endpoints = 127.0.0.2:$port
INI
sed -e "s|on.log|off.log|" -e "s|access_log_callers = on|access_log_callers = off|" "$TMP/on.ini" > "$TMP/off.ini"

MESHIM_CONFIG=$TMP/on.ini shimmed "$CALLERS" orders "$port" || fail "callers program failed"
python3 - "$TMP/on.log" <<'PY' || fail "caller stack: $(cat "$TMP/on.log")"
import json, sys
[line] = [json.loads(l) for l in open(sys.argv[1])]
frames = line["callers"]
names = [f.split("+")[0] for f in frames]
assert "fetch_orders" in names and "main" in names, frames
assert names.index("fetch_orders") < names.index("main"), frames       # innermost first
assert frames[0].startswith("fetch_orders+0x") and frames[0].endswith("(callers)"), frames
assert not any("libmeshim" in f for f in frames), frames
assert line["result"] == "ok" and line["bytes_received"] > 0, line
print(" -> ".join(frames[:2]))
PY
ok "callers: $(python3 -c "import json; print(' <- '.join(json.loads(open('$TMP/on.log').readline())['callers'][:2]))")"

MESHIM_CONFIG=$TMP/off.ini strace -f -qq -e trace=openat -o "$TMP/off.trace" \
    env LD_PRELOAD="$MESHIM_PRELOAD" "$CALLERS" orders "$port" || fail "callers program failed (off)"
grep -q '"callers"' "$TMP/off.log" && fail "callers written with access_log_callers = off"
grep -q libunwind "$TMP/off.trace" && fail "libunwind loaded with access_log_callers = off"
ok "access_log_callers = off: no callers field, libunwind not loaded"

# A shimmed python3 server with a strict inbound port: plaintext clients are
# refused by the relay (the application reads EOF and never their bytes);
# an mTLS client is served, and its line names its identity.
. "$ROOT/tests/integration/certs.sh"
make_certs "$TMP/pki" || fail "cannot make the test certificates"
iport=$(free_port)
cat > "$TMP/in.ini" <<INI
[meshim]
log_level = info
access_log = $TMP/in.log
stats_dir = $TMP/stats
[tls]
cert = $TMP/pki/orders.pem
key = $TMP/pki/orders.key
ca = $TMP/pki/ca.pem
[inbound:$iport]
tls = strict
INI
MESHIM_CONFIG=$TMP/in.ini env LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -m http.server --bind 127.0.0.1 "$iport" > "$TMP/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_port 127.0.0.1 "$iport"        # a port check: closed before a byte, not refused
for i in 1 2 3; do
    python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $iport)); s.sendall(b'GET / HTTP/1.0\r\n\r\n')
try:
    got = s.recv(100)
except ConnectionResetError:
    got = b''
assert not got.startswith(b'HTTP'), 'the server answered a plaintext client'" || fail "plaintext client got an answer"
done
cat > "$TMP/in-cli.ini" <<INI
[tls]
cert = $TMP/pki/web.pem
key = $TMP/pki/web.key
ca = $TMP/pki/ca.pem
[service:front]
endpoints = 127.0.0.1:$iport
tls = mtls
INI
MESHIM_CONFIG=$TMP/in-cli.ini shimmed python3 -c "
import urllib.request
assert urllib.request.urlopen('http://front:$iport/', timeout=5).status == 200" || fail "mTLS client refused"
for i in $(seq 1 50); do [ "$(grep -c inbound "$TMP/in.log" 2>/dev/null)" -ge 5 ] && break; sleep 0.1; done
python3 - "$TMP/in.log" "$iport" "$SERVER" <<'PY' || fail "inbound lines: $(cat "$TMP/in.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 5, lines
for l in lines:
    assert l["direction"] == "inbound" and l["service"] == f"inbound:{sys.argv[2]}", l
    assert l["pid"] == int(sys.argv[3]) and l["endpoint"].startswith("127.0.0.1:"), l
refused = [l for l in lines if l["result"] == "tls_error"]
served = [l for l in lines if l["result"] == "ok"]
checked = [l for l in lines if l["result"] == "abandoned"]
assert len(refused) == 3 and all(l["flags"] == "DENY" and l["tls"] == "none" for l in refused), lines
# wait_port's connection, closed before its first byte: a port check.
assert len(checked) == 1 and checked[0]["flags"] == "DC" and checked[0]["bytes_received"] == 0, lines
# This kernel has no kernel TLS: relayed, and the line says why.
assert len(served) == 1 and served[0]["tls"] == "relay", served
assert "kernel does not take TLS keys" in served[0]["tls_relay_why"], served
assert served[0]["peer_identity"] == "spiffe://test.mesh/ns/prod/sa/web", served
assert served[0]["bytes_received"] > 0 and served[0]["bytes_sent"] > 0, served
PY
meshim stats --prometheus --dir "$TMP/stats" > "$TMP/prom.txt"
grep -qx "meshim_inbound_connections_total{process=\"python3\",pid=\"$SERVER\",port=\"$iport\",result=\"tls_error\"} 3" "$TMP/prom.txt" ||
    fail "inbound counter: $(grep inbound_connections "$TMP/prom.txt")"
grep -qx "meshim_inbound_connections_total{process=\"python3\",pid=\"$SERVER\",port=\"$iport\",result=\"ok\"} 1" "$TMP/prom.txt" ||
    fail "inbound counter (ok): $(grep inbound_connections "$TMP/prom.txt")"
grep -qx "meshim_tls_handshakes_total{process=\"python3\",pid=\"$SERVER\",direction=\"inbound\",result=\"ok\",continued=\"relay\"} 1" "$TMP/prom.txt" ||
    fail "handshakes by how they went on: $(grep tls_handshakes "$TMP/prom.txt")"
[ "$(grep -c '"GET / ' "$TMP/server.log")" -eq 1 ] || fail "the server saw a request from a refused client: $(cat "$TMP/server.log")"
grep "refused" "$TMP/server.log" | grep -v "TLS handshake: http request" &&
    fail "a refusal line for a client that sent no plaintext (above)"
grep -q "closed before its first byte (a port check)" "$TMP/server.log" ||
    fail "no info line for wait_port's port check: $(cat "$TMP/server.log")"
ok "inbound: 3 plaintext clients refused (tls_error, DENY), a port check logged as abandoned (DC) with no warning, 1 mTLS client served (its SPIFFE ID logged); counters agree"

# A process killed outright leaves its stats file; the command skips it and
# removes it (a process that exits removes its own).
kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null
[ -f "$TMP/stats/$SERVER.stats" ] || fail "the killed server's stats file is already gone"
meshim stats --dir "$TMP/stats" | grep -q "no live meshed process" || fail "a killed process is still shown"
[ -f "$TMP/stats/$SERVER.stats" ] && fail "the killed server's stats file was not removed"
ok "a SIGKILLed process: its stats file skipped and removed by meshim stats"

# Many processes appending long lines (caller stacks) to one access log at
# once: every line stays whole.
for i in 1 2 3 4; do
    MESHIM_CONFIG=$TMP/on.ini shimmed python3 -c "
import socket
for _ in range(50):
    s = socket.create_connection(('orders', $port)); s.sendall(b'GET /who HTTP/1.0\r\n\r\n')
    while s.recv(4096): pass
    s.close()" &
    CLIENTS+=($!)
done
for p in "${CLIENTS[@]}"; do wait "$p" || fail "a client failed"; done
python3 - "$TMP/on.log" <<'PY' || fail "interleaved access log"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
parsed = [json.loads(l) for l in lines]          # raises on a line cut or mixed with another
assert len(parsed) == 1 + 200, len(parsed)
assert all(len(p["callers"]) > 3 for p in parsed[1:]), "python3 lines without a stack"
print(f"{len(parsed)} lines, longest {max(map(len, lines))} bytes")
PY
ok "4 processes x 50 connections appending to one access log: every line whole JSON"

# Node (libuv) closes sockets with syscall(SYS_close, fd), not close():
# the syscall() hook sees it, so each connection's line has its bytes and
# ends when the socket is closed, not when the process exits.
cat > "$TMP/client.js" <<'JS'
const http = require('http');
const port = Number(process.argv[2]);
let done = 0;
function one() {
    http.get({ host: 'orders', port, path: '/who', agent: false }, res => {
        res.resume();
        res.on('end', () => { if (++done < 5) one(); else setTimeout(() => {}, 300); });
    }).on('error', e => { console.error(e.message); process.exit(1); });
}
one();
JS
MESHIM_CONFIG=$TMP/off.ini shimmed node "$TMP/client.js" "$port" || fail "node client"
python3 - "$TMP/off.log" <<'PY' || fail "node's access-log lines: $(tail -5 "$TMP/off.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])][1:]      # the first is the C program's
assert len(lines) == 5, lines
assert all(l["bytes_sent"] > 0 and l["bytes_received"] > 0 and l["result"] == "ok" for l in lines), lines
assert all(l["duration_ms"] < 250 for l in lines), lines     # ended at close, not at exit (300 ms later)
PY
ok "node (libuv closes with syscall()): 5 lines, with bytes, each ended at its close"
