#!/usr/bin/env bash
# Programs that ask the name server themselves (dnscapture.h): their own
# DNS client, over UDP, to a real name server (dnsmasq on loopback, which
# knows one name of its own, real.test, and answers NXDOMAIN for the
# rest, as a cluster's DNS does for a mesh name):
#   - nginx's `resolver` on port 53 (127.0.0.153) and a proxy_pass with a
#     variable: requests by a service's name reach its endpoints, balanced
#     per connection by the shim; real.test is the server's own answer;
#     with `dns_capture = off` the name stays unresolved (502);
#   - Node's dns.resolve4/resolve6/reverse (c-ares) to `[meshim]
#     dns_server`'s port: the VIP, no AAAA record for an IPv4 service,
#     NXDOMAIN for an unknown name, real.test's own address, the VIP's
#     reverse name the service's and another address's the server's;
#   - HAProxy's `resolvers` with a server-template: the server takes the
#     VIP, and its requests spread over the service's endpoints.
. "$(dirname "$0")/lib.sh"
command -v dnsmasq >/dev/null || fail "dnsmasq is not installed (apt-get install dnsmasq-base)"
[ "$(id -u)" = 0 ] || { echo "skip: needs root (a name server on port 53, nginx workers as nobody)"; exit 77; }

port=$(free_port)
start_backends "$port"
dns_port=$(free_port)
echo "127.0.0.4 real.test" > "$TMP/hosts"
# start_dns ADDRESS PORT: dnsmasq with real.test only; every other name is
# NXDOMAIN (`address=/#/`: no name goes upstream).
start_dns() {
    dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --address=/#/ \
        --addn-hosts="$TMP/hosts" --local-ttl=1 --port="$2" --listen-address="$1" \
        --bind-interfaces --user=root --group=root --pid-file="$TMP/dnsmasq-$2.pid" \
        --log-facility=- --log-queries 2>>"$TMP/dnsmasq-$2.log" &
    PIDS+=($!)
    wait_until "grep -q 'started' '$TMP/dnsmasq-$2.log'" || fail "dnsmasq on $1:$2: $(cat "$TMP/dnsmasq-$2.log")"
}
start_dns 127.0.0.153 53
start_dns 127.0.0.1 "$dns_port"

config() {   # config FILE [meshim keys...]
    local f=$1
    shift
    { printf '[meshim]\naccess_log = %s\n' "$TMP/access.log"; printf '%s\n' "$@"
      printf '[service:orders]\nendpoints = 127.0.0.2:%s, 127.0.0.3:%s\nlb = round_robin\n' "$port" "$port"; } > "$f"
}
config "$TMP/mesh.ini" "dns_server = 127.0.0.1:$dns_port"
config "$TMP/off.ini" "dns_capture = off"
vip=$(MESHIM_CONFIG=$TMP/mesh.ini meshim check | awk '/^service orders/ {f = 1} f && $1 == "vip" {print $2; exit}')
case $vip in 127.*) ;; *) fail "meshim check gave no VIP for orders: $(MESHIM_CONFIG=$TMP/mesh.ini meshim check)" ;; esac

# --- nginx's resolver, port 53 -------------------------------------------
# gets N NAME FRONT OUT: N requests to nginx at FRONT for /NAME/who.
gets() {
    local i
    : > "$4"
    for ((i = 0; i < $1; i++)); do
        python3 - "http://127.0.0.1:$3/$2/who" >> "$4" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())
except urllib.error.HTTPError as e:
    print("status-%d" % e.code)
PY
    done
}
nginx_conf() {   # the http block: /NAME/ goes to http://NAME:PORT by nginx's own resolver
    echo "resolver 127.0.0.153 valid=1s ipv6=off; resolver_timeout 5s;
          server { listen 127.0.0.1:$1;
                   location ~ ^/([a-z.]+)/(.*)\$ { set \$name \$1; set \$rest \$2;
                                                   proxy_pass http://\$name:$port/\$rest; } }"
}
front=$(free_port)
start_nginx nginx "$(nginx_conf "$front")" LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/mesh.ini"
wait_port 127.0.0.1 "$front"
gets 6 orders "$front" "$TMP/nginx.out"
[ "$(count backend-2 "$TMP/nginx.out")" = 3 ] && [ "$(count backend-3 "$TMP/nginx.out")" = 3 ] ||
    fail "nginx resolver, orders: $(sort "$TMP/nginx.out" | uniq -c | tr '\n' ' '); $(tail -3 "$TMP/nginx/error.log")"
grep -q "query\[A\] orders from" "$TMP/dnsmasq-53.log" || fail "nginx's query never reached the name server"
n=$(grep -c '"service":"orders","endpoint":"127.0.0.[23]:'"$port"'"' "$TMP/access.log" || true)
[ "$n" -ge 6 ] || fail "nginx resolver: $n access-log lines for orders (want 6): $(cat "$TMP/access.log")"
ok "nginx resolver (port 53) by name: 3 + 3 over the endpoints, $n access-log lines"
gets 2 real.test "$front" "$TMP/real.out"
[ "$(count backend-4 "$TMP/real.out")" = 2 ] || fail "nginx resolver, real.test: $(cat "$TMP/real.out")"
ok "nginx resolver: real.test is the name server's own answer (127.0.0.4)"

front2=$(free_port)
start_nginx nginx-off "$(nginx_conf "$front2")" LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/off.ini"
wait_port 127.0.0.1 "$front2"
gets 1 orders "$front2" "$TMP/off.out"
grep -qx "status-502" "$TMP/off.out" && grep -q "orders could not be resolved" "$TMP/nginx-off/error.log" ||
    fail "dns_capture = off: $(cat "$TMP/off.out"); $(tail -2 "$TMP/nginx-off/error.log")"
ok "dns_capture = off: nginx's resolver gets the name server's NXDOMAIN (502)"

# --- Node's c-ares, dns_server's port ------------------------------------
cat > "$TMP/resolve.js" <<'JS'
const dns = require('dns').promises;
const r = new dns.Resolver();
r.setServers([process.argv[2]]);
const show = (p) => p.then((a) => a.join(','), (e) => e.code);
(async () => {
  const vip = await show(r.resolve4('orders'));
  console.log([vip, await show(r.resolve6('orders')), await show(r.resolve4('nothing.test')),
               await show(r.resolve4('real.test')), await show(r.reverse(vip)),
               await show(r.reverse('127.0.0.9'))].join(' '));
})();
JS
got=$(shimmed env MESHIM_CONFIG="$TMP/mesh.ini" node "$TMP/resolve.js" "127.0.0.1:$dns_port" 2>&1)
want="$vip ENODATA ENOTFOUND 127.0.0.4 orders ENOTFOUND"
[ "$got" = "$want" ] || fail "node dns.resolve: '$got' (want '$want')"
ok "node dns.resolve4/resolve6/reverse (c-ares) at dns_server's port: $got"

# --- every receive call ----------------------------------------------------
# python3's socket and os calls, one query each, to dns_server's port (the
# socket connected, or sendto): recv, recvfrom, recvmsg into one buffer and
# scattered over two (the header alone in the first), read, readv; and a
# batch by sendmmsg, read by recvmmsg.
cat > "$TMP/calls.py" <<'PY'
import os, socket, struct, sys
server = ("127.0.0.1", int(sys.argv[1]))
def query(qid, name):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", 1, 1)
def answer(r):
    qid, flags, qd, an = struct.unpack(">HHHH", r[:8])
    return "%d:%s" % (flags & 15, ".".join(map(str, r[-4:])) if an else "-")
out = []
for i, how in enumerate(["recv", "recvfrom", "recvmsg", "recvmsg2", "read", "readv"]):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if how == "recvfrom":
        s.sendto(query(i, "orders"), server)
    else:
        s.connect(server)
        s.send(query(i, "orders"))
    if how == "recv":
        r = s.recv(512)
    elif how == "recvfrom":
        r, src = s.recvfrom(512)
        assert src == server, src
    elif how == "recvmsg":
        r = s.recvmsg(512)[0]
    elif how == "recvmsg2":
        a, b = bytearray(12), bytearray(500)
        n = s.recvmsg_into([a, b])[0]
        r = bytes(a + b)[:n]
    elif how == "read":
        r = os.read(s.fileno(), 512)
    else:
        a, b = bytearray(12), bytearray(500)
        n = os.readv(s.fileno(), [a, b])
        r = bytes(a + b)[:n]
    out.append("%s=%s" % (how, answer(r)))
    s.close()
# sendmmsg and recvmmsg (libc's, through ctypes): a batch of two queries,
# a service name and real.test, from an unconnected socket.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
addr = ctypes.create_string_buffer(struct.pack("<H", socket.AF_INET) + struct.pack(">H", server[1]) +
                                   socket.inet_aton(server[0]) + b"\0" * 8, 16)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
bufs = [ctypes.create_string_buffer(query(10, "orders")), ctypes.create_string_buffer(query(11, "real.test"))]
vec = (mmsghdr * 2)()
iovs = (iovec * 2)()
for i, b in enumerate(bufs):
    iovs[i] = iovec(ctypes.addressof(b), len(b.raw) - 1)
    vec[i].hdr = msghdr(ctypes.addressof(addr), 16, ctypes.pointer(iovs[i]), 1, None, 0, 0)
assert libc.sendmmsg(s.fileno(), vec, 2, 0) == 2, ctypes.get_errno()
rbufs = [ctypes.create_string_buffer(512) for _ in range(2)]
for i, b in enumerate(rbufs):
    iovs[i] = iovec(ctypes.addressof(b), 512)
    vec[i].hdr = msghdr(None, 0, ctypes.pointer(iovs[i]), 1, None, 0, 0)
got = 0
while got < 2:
    n = libc.recvmmsg(s.fileno(), ctypes.byref(vec, got * ctypes.sizeof(mmsghdr)), 2 - got, 0, None)
    assert n > 0, ctypes.get_errno()
    got += n
answers = sorted("%d=%s" % (struct.unpack(">H", rbufs[i].raw[:2])[0], answer(rbufs[i].raw[:vec[i].len]))
                 for i in range(2))
out.append("recvmmsg=" + ",".join(answers))
print(" ".join(out))
PY
got=$(shimmed env MESHIM_CONFIG="$TMP/mesh.ini" python3 "$TMP/calls.py" "$dns_port" 2>&1)
want="recv=0:$vip recvfrom=0:$vip recvmsg=0:$vip recvmsg2=0:$vip read=0:$vip readv=0:$vip recvmmsg=10=0:$vip,11=0:127.0.0.4"
[ "$got" = "$want" ] || fail "receive calls: '$got' (want '$want')"
ok "python3's recv, recvfrom, recvmsg (one buffer and two), read, readv and recvmmsg: the VIP; real.test its own"

# --- HAProxy's resolvers ---------------------------------------------------
hfront=$(free_port)
cat > "$TMP/haproxy.cfg" <<CFG
global
    log stderr local0 info
defaults
    mode http
    option http-server-close
    timeout connect 5s
    timeout client 10s
    timeout server 10s
resolvers mesh
    nameserver ns 127.0.0.153:53
    hold valid 1s
frontend fe
    bind 127.0.0.1:$hfront
    default_backend be
backend be
    server-template s 1 orders:$port resolvers mesh init-addr none
CFG
shimmed env MESHIM_CONFIG="$TMP/mesh.ini" haproxy -f "$TMP/haproxy.cfg" > "$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_until "grep -q 'changed its IP from (none) to $vip' '$TMP/haproxy.log'" ||
    fail "haproxy's server never took the VIP: $(cat "$TMP/haproxy.log")"
: > "$TMP/hap.out"
for i in 1 2 3 4; do
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())' \
        "http://127.0.0.1:$hfront/who" >> "$TMP/hap.out" || fail "haproxy: request $i: $(tail -3 "$TMP/haproxy.log")"
done
[ "$(count backend-2 "$TMP/hap.out")" = 2 ] && [ "$(count backend-3 "$TMP/hap.out")" = 2 ] ||
    fail "haproxy resolvers: $(sort "$TMP/hap.out" | uniq -c | tr '\n' ' ')"
ok "haproxy resolvers: the server took $vip; 2 + 2 over the endpoints"
