# IPv6 callers: an AF_INET6 socket reaches IPv4 endpoints through the mapped
# VIP, and IPv6 endpoints ([::1]) work from AF_INET6 sockets.
. "$(dirname "$0")/lib.sh"
shims python3

port=$(free_port)
start_backends "$port"
mkdir -p "$TMP/www6" && echo "backend-v6" > "$TMP/www6/who"
python3 -m http.server --bind ::1 --directory "$TMP/www6" "$port" > "$TMP/v6.log" 2>&1 &
PIDS+=($!)
wait_port ::1 "$port"
export MESHIM_SERVICES="orders=127.0.0.2:$port;six=[::1]:$port"

shimmed python3 - "$port" <<'PY' || fail "IPv6 callers"
import socket, sys
port = int(sys.argv[1])
def get(host, family):
    addr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(addr)
    s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()
assert get("orders", socket.AF_INET6) == "backend-2"
assert get("six", socket.AF_INET6) == "backend-v6"
print("ok")
PY
ok "AF_INET6 socket -> IPv4 endpoint via mapped VIP; -> [::1] endpoint"
out=$(shimmed python3 - "$port" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # what curl -4 or requests would use
try:
    s.connect((socket.gethostbyname("six"), int(sys.argv[1])))
    print("connected")
except ConnectionRefusedError:
    print("refused")
PY
)
echo "$out" | grep -qx refused || fail "AF_INET socket to an IPv6-only service should be refused: $out"
echo "$out" | grep -q "six: no endpoint reachable from an IPv4 socket" || fail "no warning said why: $out"
ok "AF_INET socket to an IPv6-only service: refused, with a warning saying why"
