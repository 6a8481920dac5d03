#!/usr/bin/env bash
# A relayed connection that is over is still a socket to the program, as a
# closed TCP socket is. On a strict mTLS port the program's accept() never
# waits for the handshake, so a client refused for a bad handshake may end
# before the program has made its first call on the descriptor. Those calls
# must not fail where TCP's would not: Python's asyncio sets TCP_NODELAY as
# it makes the transport of an accepted socket, and on an error drops the
# socket without closing it or telling the program (seen in CI: the
# application end of a garbage client's relay left open in t_bad_peers).
#
#   1. A blocking python3 server reads the end of a refused client, then
#      sets TCP_NODELAY and SO_KEEPALIVE, asks its addresses and SO_DOMAIN:
#      every call answers as on a closed TCP socket (before: ENOTCONN).
#   2. An asyncio server (the one t_bad_peers runs) is stopped while 40
#      clients that send noise queue, and continued: it is given all 40,
#      sees each end, and its descriptors come back (before: most were
#      never seen and each left a descriptor open).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

# --- 1. the calls on a relay that is over ----------------------------------
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 -u - "$port" > "$TMP/calls.out" 2> "$TMP/calls.err" <<'PY' &
import socket, sys
port = int(sys.argv[1])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.2", port))
ls.listen(8)
print("listening", flush=True)
c, addr = ls.accept()
c.settimeout(20)
print("read", c.recv(100), flush=True)          # b'': the relay refused the client and is over
def call(what, f):
    try:
        print(what, "=", f(), flush=True)
    except OSError as e:
        print(what, "error", e.errno, e.strerror, flush=True)
call("nodelay", lambda: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))
call("keepalive", lambda: c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
call("sockname", lambda: c.getsockname())
call("peername", lambda: c.getpeername() == addr)
call("domain", lambda: c.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET)
c.close()
print("done", flush=True)
PY
server=$!
PIDS+=($server)
wait_until 'grep -q listening "$TMP/calls.out"' || fail "the server did not listen: $(tail -3 "$TMP/calls.out")"
python3 -c '
import os, socket, sys
s = socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=20)
s.sendall(os.urandom(512))          # noise instead of a ClientHello
try:
    while s.recv(4096):
        pass
except ConnectionResetError:
    pass
' "$port" || fail "the noisy client could not connect"
wait "$server" || fail "the server failed: $(tail -5 "$TMP/calls.out" "$TMP/calls.err")"
out=$(cat "$TMP/calls.out")
want="listening
read b''
nodelay = None
keepalive = None
sockname = ('127.0.0.2', $port)
peername = True
domain = True
done"
[ "$out" = "$want" ] || fail "calls on a relay that is over, as on a closed TCP socket: got
$out"
ok "a refused client's descriptor, its relay over: TCP_NODELAY and SO_KEEPALIVE taken, its addresses and SO_DOMAIN answered"

# --- 2. asyncio given clients refused before it made their transports -------
port=$(free_port)
tls_ini "$TMP/async.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/async.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 -u "$ROOT/tests/integration/bad_peers/server.py" "$port" \
    > "$TMP/async.log" 2> "$TMP/async.err" &
server=$!
PIDS+=($server)
# Ready when it has served a client of its own (a connect alone would
# leave a connection the counts below would have to wait out).
wait_until 'python3 -c "import socket,sys; socket.create_connection((\"127.0.0.2\", $port), timeout=2).close()" 2>/dev/null' ||
    fail "the asyncio server did not listen"
wait_until '[ "$(grep -c "^gone" "$TMP/async.log")" = 1 ]' || fail "the asyncio server did not see its first client end"
fds() { ls "/proc/$server/fd" | wc -l; }
base=$(fds)
kill -STOP "$server"
python3 -c '
import os, socket, sys
held = []
for _ in range(40):
    s = socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=20)
    s.sendall(os.urandom(512))
    held.append(s)
for s in held:
    s.close()
' "$port" || { kill -CONT "$server"; fail "the noisy clients could not connect"; }
kill -CONT "$server"
wait_until '[ "$(grep -c "^gone" "$TMP/async.log")" = 41 ]' ||
    fail "asyncio was given $(($(grep -c '^conn' "$TMP/async.log") - 1)) of the 40 refused clients, saw $(($(grep -c '^gone' "$TMP/async.log") - 1)) end; $(tail -3 "$TMP/async.err")"
wait_until '[ "$(fds)" -le "$base" ]' ||
    fail "asyncio server's descriptors: $base before, $(fds) after the 40 ended: $(ls -l /proc/$server/fd | tail -5)"
ok "asyncio given 40 clients its port refused while it was stopped: each seen and ended, descriptors back to $base"
