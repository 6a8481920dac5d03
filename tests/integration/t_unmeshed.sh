# What the mesh does not own behaves exactly as without the shim: direct IP
# connects, UDP to a VIP, Unix sockets, unknown names, a port not in `ports`.
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

# A port the service does not mesh: the VIP itself is dialled (refused).
out=$(shimmed curl -sS --max-time 5 "http://orders:$((port + 1))/who" 2>&1; echo "rc=$?")
case "$out" in *"rc=7") ;; *) fail "port outside ports = $port was meshed: $out" ;; esac
ok "port outside 'ports' passes through"

shimmed python3 - "$port" <<'PY' || fail "python UDP / Unix sockets"
import os, socket, sys, tempfile
vip = socket.gethostbyname("orders")
# UDP to the VIP: not meshed, the datagram is sent to the VIP as asked.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect((vip, int(sys.argv[1])))
assert u.getpeername() == (vip, int(sys.argv[1])), u.getpeername()
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
ok "UDP to a VIP and Unix sockets pass through"
