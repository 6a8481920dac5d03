#!/usr/bin/env bash
# A DNS server that stalls (security review, finding 8): it answers the SRV
# query of "orders" with 40 targets and no addresses, and never answers the
# A/AAAA queries for them. The shim used to ask for each target in turn,
# ~4 s each, on the thread that also reloads the config and rotates
# certificates: 40 targets held every reload back for minutes. Now:
#   - a reload of the INI file is applied within seconds while the DNS
#     server stalls (the files have a thread of their own);
#   - at most 16 targets are asked for, all within one deadline;
#   - connections to orders keep working on its static endpoint.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_backends "$port"
dns_port=$(free_port)

# The stalling server: logs "TIME TYPE NAME" per query; answers only SRV.
python3 - "$dns_port" "$TMP/dns.log" "$port" > "$TMP/dns.out" 2>&1 <<'PY' &
import socket, struct, sys, time
port, log, app_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
def name(msg, off):
    labels = []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += n + 1
    return ".".join(labels), off + 1
def encode(n):
    return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\0"
deadline = time.time() + 120
while time.time() < deadline:
    s.settimeout(1)
    try:
        msg, peer = s.recvfrom(4096)
    except socket.timeout:
        continue
    qname, off = name(msg, 12)
    qtype = struct.unpack("!H", msg[off:off + 2])[0]
    with open(log, "a") as f:
        f.write("%.3f %d %s\n" % (time.time(), qtype, qname))
    if qtype != 33:
        continue            # A, AAAA: never answered
    question = msg[12:off + 4]
    answers = b""
    for i in range(40):
        rdata = struct.pack("!HHH", 10, 10, app_port) + encode("t%d.slow.test" % i)
        answers += b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 60, len(rdata)) + rdata
    header = msg[:2] + struct.pack("!HHHHH", 0x8180, 1, 40, 0, 0)
    s.sendto(header + question + answers, peer)
PY
PIDS+=($!)
wait_udp "$dns_port"

cat > "$TMP/mesh.ini" <<INI
[meshim]
log_level = info
dns_server = 127.0.0.1:$dns_port
[tls]
reload_interval = 300ms
[service:orders]
srv = _x._tcp.slow.test
endpoints = 127.0.0.2:$port
INI
export MESHIM_CONFIG=$TMP/mesh.ini

shimmed python3 - "$port" "$TMP" > "$TMP/loop.out" 2> "$TMP/loop.err" <<'PY' &
import os, socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
deadline = time.time() + 90
while not os.path.exists(tmp + "/stop") and time.time() < deadline:
    try:
        s = socket.create_connection(("orders", port), timeout=5)
        s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
        while s.recv(4096):
            pass
        s.close()
        print("%.3f ok" % time.time(), flush=True)
    except OSError as e:
        print("%.3f FAILED %s" % (time.time(), e), flush=True)
    time.sleep(0.05)
PY
loop=$!
PIDS+=($loop)

# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for i in $(seq 1 $(( $3 * 10 ))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
wait_for "$TMP/dns.log" " 33 _x._tcp.slow.test" 20 || fail "the shim never asked the SRV name"
wait_for "$TMP/dns.log" " 1 t[0-9]*.slow.test" 20 || fail "the shim never asked for the targets' addresses"

# The DNS server now stalls the shim: rewrite the INI file.
cat >> "$TMP/mesh.ini" <<INI
[service:billing]
endpoints = 127.0.0.3:$port
INI
wait_for "$TMP/loop.err" "reloaded, 2 services" 15 ||
    fail "the reload waited for the stalling DNS server: $(tail -5 "$TMP/loop.err")"
ok "INI file reloaded while the DNS server stalled the SRV targets' lookups"

wait_for "$TMP/loop.err" "more than 16 targets without an address" 10 ||
    fail "no line saying the other targets are not asked for: $(tail -5 "$TMP/loop.err")"
asked=$(awk '$2 == 1 || $2 == 28 {print $3}' "$TMP/dns.log" | sort -u | wc -l)
[ "$asked" -le 16 ] || fail "$asked targets asked for (at most 16)"
[ "$asked" -ge 1 ] || fail "no target asked for"
ok "at most 16 SRV targets asked for ($asked distinct names)"

touch "$TMP/stop"
wait "$loop"
fails=$(grep -c FAILED "$TMP/loop.out")
oks=$(grep -c ' ok' "$TMP/loop.out")
[ "$fails" -eq 0 ] || fail "$fails connections failed: $(grep FAILED "$TMP/loop.out" | head -3)"
[ "$oks" -gt 0 ] || fail "no connection made"
ok "$oks connections to orders, none failed, while its DNS stalled"
