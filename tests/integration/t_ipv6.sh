# IPv6 callers: an AF_INET6 socket reaches IPv4 endpoints through the mapped
# VIP, and IPv6 endpoints ([::1]) work from AF_INET6 sockets. A service with
# IPv6 endpoints resolves, for callers of any family (AF_UNSPEC: curl,
# python's create_connection, nginx), to the mapped VIP, so their sockets
# are AF_INET6 and reach them, plain and over mTLS; an IPv4-only service
# still resolves to its IPv4 VIP.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
shims python3

port=$(free_port)
start_backends "$port"
mkdir -p "$TMP/www6" && echo "backend-v6" > "$TMP/www6/who"
python3 -m http.server --bind ::1 --directory "$TMP/www6" "$port" > "$TMP/v6.log" 2>&1 &
PIDS+=($!)
wait_port ::1 "$port"
export MESHIM_SERVICES="orders=127.0.0.2:$port;six=[::1]:$port;both=127.0.0.3:$port,[::1]:$port"

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

# Callers that leave the family to the resolver (AF_UNSPEC).
shimmed python3 - "$port" <<'PY' || fail "AF_UNSPEC callers"
import collections, socket, sys, urllib.request
port = int(sys.argv[1])
def family(host):
    return socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)[0][0]
assert family("orders") == socket.AF_INET, "an IPv4-only service must keep its IPv4 VIP"
assert family("six") == socket.AF_INET6, "six has IPv6 endpoints: the mapped VIP"
def who(host):
    with urllib.request.urlopen("http://%s:%d/who" % (host, port), timeout=5) as r:
        return r.read().decode().strip()
assert who("six") == "backend-v6"
seen = collections.Counter(who("both") for _ in range(20))
assert set(seen) == {"backend-3", "backend-v6"}, seen
print("ok")
PY
ok "AF_UNSPEC callers (python urllib): an IPv6-only service reached; one of both families spread over both"

under_asan || {
    out=$(shimmed curl -sS --max-time 5 "http://six:$port/who" 2>&1) && [ "$out" = backend-v6 ] ||
        fail "curl to an IPv6-only service: $out"
    ok "curl to an IPv6-only service by name: $out"
}

# mTLS to an IPv6 endpoint: the server on [::1] behind a strict port.
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
tport=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$tport]" "tls = strict"
tls_ini "$TMP/client.ini" web "[service:secure6]" "endpoints = [::1]:$tport" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
(cd "$TMP/www6" && MESHIM_CONFIG=$TMP/server.ini exec env LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -m http.server --bind ::1 "$tport" > "$TMP/v6tls.log" 2>&1) &
PIDS+=($!)
wait_port ::1 "$tport"
out=$(MESHIM_CONFIG=$TMP/client.ini shimmed python3 -c "
import urllib.request, sys
print(urllib.request.urlopen('http://secure6:$tport/who', timeout=5).read().decode().strip())" 2> "$TMP/v6tls.err") &&
    [ "$out" = backend-v6 ] || fail "mTLS to an IPv6 endpoint: $out $(tail -3 "$TMP/v6tls.err")"
ok "mTLS to an IPv6 endpoint ([::1], strict): $out"
