# UDP to a service's name (udp.h). A VIP has no host behind it, so a
# datagram sent to it as it is would be lost without an error; the shim
# gives the socket one of the service's endpoints and keeps it:
# - logger (syslog over UDP), nc -u and socat reach the endpoint by the
#   service's name, and nc and socat read the endpoint's answer;
# - python3: sendto() reaches an endpoint and the answer's source reads as
#   the VIP (what a client that checks it, such as a DNS resolver, needs);
#   connect() does the same and getpeername() says the VIP, and a second
#   connect() takes the next endpoint (a program that connects again
#   after ECONNREFUSED is not stuck on a dead one); one socket's
#   datagrams all go to one endpoint; sockets spread over the endpoints;
#   an AF_INET6 socket reaches the service through the VIP's mapped form;
# - a tls = mtls service refuses datagrams (EPERM, one warning) and its
#   endpoint receives nothing: no plaintext where mTLS is configured.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# sink N PORT: a UDP sink on 127.0.0.N, its lines in $TMP/sinkN.log.
sink() {
    python3 -u "$ROOT/tests/helpers/udp_sink.py" "127.0.0.$1" "$2" > "$TMP/sink$1.log" 2>&1 &
    PIDS+=($!)
    wait_until "grep -q ready '$TMP/sink$1.log'" || fail "UDP sink $1 did not start"
}

p2=$(free_udp_port)
p3=$(free_udp_port)
sink 2 "$p2"
sink 3 "$p3"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
tls_ini "$TMP/udp.ini" web \
    "[service:syslog]" "endpoints = 127.0.0.2:$p2" \
    "[service:stats]" "endpoints = 127.0.0.2:$p2, 127.0.0.3:$p3" \
    "[service:secret]" "endpoints = 127.0.0.3:$p3" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
sed -i 's/^log_level = info/log_level = warn/' "$TMP/udp.ini"
export MESHIM_CONFIG=$TMP/udp.ini

# Real programs, by the service's name; the port they name is the VIP's.
# (logger hangs at start with the ASan runtime preloaded, shim or not.)
if ! under_asan; then
    shimmed logger -d -n syslog -P 514 "hello from logger" || fail "logger failed"
    wait_until "grep -q 'hello from logger' '$TMP/sink2.log'" || fail "logger's message did not arrive: $(cat "$TMP/sink2.log")"
    ok "logger -d (syslog over UDP) to syslog:514 reached the endpoint"
fi

out=$(echo "echo from nc" | shimmed timeout 10 nc -u -w 2 syslog 514 2> "$TMP/nc.err")
[ "$out" = "answer to echo from nc" ] || fail "nc -u: '$out' $(cat "$TMP/nc.err")"
out=$(echo "echo from socat" | shimmed timeout 10 socat -t 2 - UDP:syslog:514 2> "$TMP/socat.err")
[ "$out" = "answer to echo from socat" ] || fail "socat: '$out' $(cat "$TMP/socat.err")"
ok "nc -u and socat UDP: sent by name, the endpoint's answer read"

# A storm of datagrams by name, each send and read cut by a timer 1 to 60 us
# in and left by siglongjmp (old UDP clients bound sendto and recvfrom with
# alarm()): the shim's work on a datagram (the routes' lock, a pick) holds
# the program's signals. Before, a jump out of it left that lock held and
# the next datagram hung (5 of 5 storms of 5,000).
out=$(shimmed timeout 60 "$ROOT/$BUILD/tests/jumpconnect" --udp-storm 60 syslog 514 5000 2> "$TMP/storm.err") ||
    fail "jumpconnect --udp-storm failed or hung ($?): '$out' $(tail -3 "$TMP/storm.err")"
[[ "$out" == jumped=*" good=OK" && "$out" != "jumped=0 "* ]] || fail "after a storm of datagrams: '$out'"
ok "a storm of jumps out of 5000 datagrams sent to syslog by name and read back, each at a random point up to 60 us in: the next one answered ($out)"

# node's dgram (libuv): answers read from the VIP.
cat > "$TMP/dgram.js" << 'EOF'
const dgram = require('dgram');
const s = dgram.createSocket('udp4');
let got = 0;
s.on('message', (m, r) => { console.log(m.toString(), r.address); if (++got == 3) s.close(); });
for (let i = 0; i < 3; i++) s.send('echo node ' + i, 514, 'syslog');
EOF
vip=$(shimmed python3 -c 'import socket; print(socket.gethostbyname("syslog"))')
out=$(shimmed timeout 20 node "$TMP/dgram.js" 2>&1 | sort)
[ "$out" = "$(printf 'answer to echo node %s %s\n' 0 "$vip" 1 "$vip" 2 "$vip")" ] || fail "node dgram: $out"
ok "node dgram: 3 datagrams by name, 3 answers from the VIP $vip"

# sendmmsg and recvmmsg (libc's, through ctypes): a batch to the VIP, the
# answers' sources read as the VIP, the caller's headers as they were.
out=$(shimmed python3 "$ROOT/tests/helpers/udp_batch.py" syslog 514 2>&1 | sort)
[ "$out" = "$(printf 'answer to echo batch %s %s 514\n' 0 "$vip" 1 "$vip")" ] || fail "sendmmsg/recvmmsg: $out"
ok "sendmmsg: a batch of 2 to the VIP reached the endpoint; recvmmsg: both answers from the VIP"

# python3: sources, peers, stickiness, spread, IPv6 sockets.
out=$(shimmed python3 - "$TMP" << 'EOF' 2>&1
import socket, sys
vip = socket.getaddrinfo("stats", 8125, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for i in range(5):
    s.sendto(b"echo sticky %d" % i, ("stats", 8125))
    data, src = s.recvfrom(100)
    assert data == b"answer to echo sticky %d" % i, data
    assert src == vip, "answer from %s, not the VIP %s" % (src, vip)
print("sendto: answers from the VIP", vip[0])
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(10)
c.connect(("stats", 8125))
assert c.getpeername() == vip, c.getpeername()
c.send(b"echo connected")
assert c.recv(100) == b"answer to echo connected"
print("connect: peer is the VIP")
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.connect(("stats", 8125)); r.send(b"reconnect 1")
r.connect(("stats", 8125)); r.send(b"reconnect 2")
for i in range(6):
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"spread %d" % i, ("stats", 8125))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.settimeout(10)
s6.sendto(b"echo six", ("::ffff:" + vip[0], 8125))
data, src = s6.recvfrom(100)
assert data == b"answer to echo six" and src[0] == "::ffff:" + vip[0], (data, src)
print("AF_INET6: answered from", src[0])
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"plaintext", ("secret", 9999))
    print("secret: sent")
except PermissionError:
    print("secret: refused")
EOF
)
echo "$out" | grep -q "sendto: answers from the VIP" || fail "sendto: $out"
echo "$out" | grep -q "connect: peer is the VIP" || fail "connect: $out"
echo "$out" | grep -q "AF_INET6: answered from" || fail "AF_INET6: $out"
echo "$out" | grep -qx "secret: refused" || fail "mTLS service: $out"
echo "$out" | grep -q "secret: UDP refused: the service is tls = mtls" || fail "no warning: $out"
ok "python3: sendto and connect answered from the VIP, getpeername the VIP, AF_INET6 through the mapped VIP"

wait_until "[ \$(grep -c ' spread ' '$TMP/sink2.log' '$TMP/sink3.log' | awk -F: '{n += \$2} END {print n}') -eq 6 ]" ||
    fail "spread: $(cat "$TMP/sink2.log" "$TMP/sink3.log")"
[ "$(grep -c ' spread ' "$TMP/sink2.log")" -ge 1 ] && [ "$(grep -c ' spread ' "$TMP/sink3.log")" -ge 1 ] ||
    fail "6 sockets all went to one endpoint: $(cat "$TMP/sink2.log" "$TMP/sink3.log")"
[ "$(grep -h ' echo sticky ' "$TMP/sink2.log" "$TMP/sink3.log" | cut -d' ' -f1 | sort -u | wc -l)" = 1 ] ||
    fail "one socket's datagrams went to two endpoints"
wait_until "[ \$(grep -c ' reconnect ' '$TMP/sink2.log' '$TMP/sink3.log' | awk -F: '{n += \$2} END {print n}') -eq 2 ]" ||
    fail "reconnect: $(cat "$TMP/sink2.log" "$TMP/sink3.log")"
[ "$(grep -c ' reconnect ' "$TMP/sink2.log")" = 1 ] || fail "a second connect() kept the first one's endpoint"
grep -q plaintext "$TMP/sink3.log" && fail "the mTLS service's endpoint received a plaintext datagram"
ok "one socket's 5 datagrams to one endpoint; a second connect to the other; 6 sockets over both ($(grep -c ' spread ' "$TMP/sink2.log") and $(grep -c ' spread ' "$TMP/sink3.log")); nothing plaintext to the mTLS one"
