# What the mesh does not own behaves exactly as without the shim: direct IP
# connects, UDP to a real address, Unix sockets, unknown names. A VIP on a
# port not in `ports` is refused, with a warning: as a loopback address it
# would reach whatever local server listens there (a server bound to the
# VIP itself stands in for one listening on every address).
. "$(dirname "$0")/lib.sh"
shims curl python3

port=$(free_port)
start_backends "$port"
cat > "$TMP/mesh.ini" <<INI
[service:orders]
endpoints = 127.0.0.3:$port
ports = $port
INI
export MESHIM_CONFIG=$TMP/mesh.ini

# Direct IP: goes where it was sent, not to the service's endpoint.
got=$(shimmed curl -sS --max-time 5 "http://127.0.0.2:$port/who")
[ "$got" = "backend-2" ] || fail "direct connect to 127.0.0.2 answered '$got'"
ok "direct IP connect untouched"

# Same exit status and message for a name nobody knows.
a=$(curl -sS --max-time 5 "http://no-such-host.invalid:$port/" 2>&1; echo "rc=$?")
b=$(shimmed curl -sS --max-time 5 "http://no-such-host.invalid:$port/" 2>&1; echo "rc=$?")
[ "$a" = "$b" ] || fail "unknown name: '$a' vs '$b'"
ok "unknown name fails the same way ($(echo "$a" | tail -1))"

# A port the service does not mesh: refused, though a local server listens
# on the VIP (as one on every address would be reached).
vip=$(shimmed python3 -c 'import socket; print(socket.gethostbyname("orders"))')
other=$(free_port)
python3 -c "
import socket, time
s = socket.socket(); s.bind(('$vip', $other)); s.listen(8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('$vip', $other))
print('ready', flush=True); time.sleep(60)" > "$TMP/local.log" &
PIDS+=($!)
wait_until "grep -q ready '$TMP/local.log'" || fail "the local server on the VIP did not start"
out=$(shimmed curl -sS --max-time 5 "http://orders:$other/who" 2>&1; echo "rc=$?")
case "$out" in *"rc=7") ;; *) fail "port outside ports = $port reached a local server: $out" ;; esac
echo "$out" | grep -q "orders: port $other is not one of the service's ports: connection refused" ||
    fail "no warning: $out"
out=$(shimmed python3 -c "
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try: u.sendto(b'x', ('orders', $other)); print('sent')
except ConnectionRefusedError: print('refused')" 2>&1)
echo "$out" | grep -qx refused || fail "UDP to the VIP on port $other: $out"
ok "port outside 'ports': connect and UDP refused, with the reason; the local server on the VIP not reached"

shimmed python3 - "$port" <<'PY' || fail "python UDP / Unix sockets"
import os, socket, sys, tempfile
# UDP to a real address: sent where it was asked (a VIP's is t_udp's).
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("127.0.0.2", int(sys.argv[1])))
assert u.getpeername() == ("127.0.0.2", int(sys.argv[1])), u.getpeername()
u.send(b"x")
u.close()
# Unix stream sockets: echo through a socketpair and a socket bound to a path.
a, b = socket.socketpair()
a.sendall(b"hello"); assert b.recv(5) == b"hello"
path = os.path.join(tempfile.mkdtemp(), "s")
srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect(path)
s, _ = srv.accept(); c.sendall(b"ping"); assert s.recv(4) == b"ping"
print("python ok")
PY
ok "UDP to a real address and Unix sockets pass through"
