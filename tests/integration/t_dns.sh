#!/usr/bin/env bash
# dns and srv discovery (SPEC §3.4) against a real DNS server: dnsmasq,
# started here on a loopback port with its own records (TTL 1 s), given by
# [meshim] dns_server. Backends 2-4 are python3 http.server.
#   - A records: curl and python3 (blocking and asyncio, each a fresh
#     process whose first connect waits for the first answer) by name;
#     the queries go out from the watcher thread, never the caller's;
#   - an AAAA record only: a fresh process by name gets an AF_INET6 socket;
#   - SRV: weights 60/20 at priority 10 split 3:1, the priority-20 target
#     takes nothing until both others fail, then everything;
#   - records changed and dnsmasq reloaded (SIGHUP): new connections go to
#     the new endpoint within TTL + 1 s;
#   - dnsmasq stopped: connections keep working on the last good set.
. "$(dirname "$0")/lib.sh"
# curl hangs with an ASan runtime preloaded (lib.sh): under ASan only the
# curl parts are left out.
command -v dnsmasq >/dev/null || fail "dnsmasq is not installed (apt-get install dnsmasq-base)"

port=$(free_port)
start_backends "$port"
dns_port=$(free_port)
cat > "$TMP/hosts" <<EOF
127.0.0.2 orders.test
127.0.0.3 orders.test
127.0.0.2 n2.test
127.0.0.3 n3.test
127.0.0.4 n4.test
::1 six.test
EOF
start_dns() {
    dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-negcache \
        --addn-hosts="$TMP/hosts" --local-ttl=1 --port="$dns_port" --listen-address=127.0.0.1 \
        --bind-interfaces --user=root --group=root --pid-file="$TMP/dnsmasq.pid" --log-facility=- \
        --srv-host="_http._tcp.orders.test,n2.test,$port,10,60" \
        --srv-host="_http._tcp.orders.test,n3.test,$port,10,20" \
        --srv-host="_http._tcp.orders.test,n4.test,$port,20,10" 2>>"$TMP/dnsmasq.log" &
    DNS_PID=$!
    PIDS+=($!)
    wait_port 127.0.0.1 "$dns_port"
}
start_dns

cat > "$TMP/mesh.ini" <<INI
[meshim]
dns_server = 127.0.0.1:$dns_port
log_level = info
[service:orders]
dns = orders.test
lb = round_robin
connect_timeout = 2s
[service:six]
dns = six.test
[service:orders-srv]
srv = _http._tcp.orders.test
lb = round_robin
eject_after = 1
INI
export MESHIM_CONFIG=$TMP/mesh.ini

# --- A records, by name, fresh processes ---------------------------------
if ! under_asan; then
: > "$TMP/curl.out"
# Each fresh process starts its round robin at a random endpoint: 16 of
# them all on one endpoint is a 1 in 32,768 chance (6 was 1 in 32, and
# failed a run).
for i in $(seq 1 16); do
    shimmed curl -sS --max-time 10 "http://orders:$port/who" >> "$TMP/curl.out" 2>>"$TMP/curl.err" ||
        fail "curl by name: $(cat "$TMP/curl.err")"
done
[ "$(count backend-2 "$TMP/curl.out")" -ge 1 ] && [ "$(count backend-3 "$TMP/curl.out")" -ge 1 ] &&
    [ "$(count backend-4 "$TMP/curl.out")" -eq 0 ] || fail "curl: $(sort "$TMP/curl.out" | uniq -c)"
ok "dns, 16 curl processes: only the A records' endpoints: $(sort "$TMP/curl.out" | uniq -c | tr -s ' ' | tr '\n' ' ')"
fi

strace -f -qq -e trace=sendto,sendmmsg,connect -o "$TMP/py.trace" \
    env LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" "$TMP/py.pid" > "$TMP/py.out" 2>"$TMP/py.err" <<'PY' ||
import asyncio, os, socket, sys
port = int(sys.argv[1])
open(sys.argv[2], "w").write(str(os.getpid()))
def get():
    s = socket.create_connection(("orders", port), timeout=5)
    s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].strip().decode()
for _ in range(20):
    print(get())
PY
    fail "python3 by name: $(cat "$TMP/py.err")"
[ "$(count backend-2 "$TMP/py.out")" -eq 10 ] && [ "$(count backend-3 "$TMP/py.out")" -eq 10 ] ||
    fail "python3, round robin over the A records: $(sort "$TMP/py.out" | uniq -c)"
# The program's own thread is its process id (the first line of the trace
# may be the shim's resolver thread, which asks before the program does).
main=$(cat "$TMP/py.pid")
queries=$(grep -c "htons($dns_port)" "$TMP/py.trace" || true)
from_main=$(grep "htons($dns_port)" "$TMP/py.trace" | awk -v m="$main" '$1 == m' | wc -l)
[ "$queries" -ge 1 ] && [ "$from_main" -eq 0 ] ||
    fail "DNS queries: $queries, $from_main of them from the program's own thread"
ok "dns, python3: 10/10 over the two A records; $queries DNS packets, none from the program's thread"

shimmed python3 - "$port" > "$TMP/aio.out" 2>"$TMP/aio.err" <<'PY' || fail "asyncio: $(cat "$TMP/aio.err")"
import asyncio, sys
port = int(sys.argv[1])
async def get():
    r, w = await asyncio.wait_for(asyncio.open_connection("orders", port), 5)
    w.write(b"GET /who HTTP/1.0\r\n\r\n")
    data = await r.read()
    w.close()
    return data.split(b"\r\n\r\n", 1)[1].strip().decode()
async def main():
    for _ in range(10):
        print(await get())
asyncio.run(main())
PY
[ "$(count backend-2 "$TMP/aio.out")" -eq 5 ] && [ "$(count backend-3 "$TMP/aio.out")" -eq 5 ] ||
    fail "asyncio: $(sort "$TMP/aio.out" | uniq -c)"
ok "dns, asyncio (the first connect waits in the engine for the answer): 5/5"

# An AAAA record only (an IPv6-only cluster): a fresh process resolving the
# name with AF_UNSPEC must get the mapped VIP, so its socket is AF_INET6.
# Its getaddrinfo waits for the first answer to know that (an IPv4 VIP
# gave an AF_INET socket, which no IPv6 endpoint can be reached from).
mkdir -p "$TMP/www6" && echo "backend-v6" > "$TMP/www6/who"
python3 -m http.server --bind ::1 --directory "$TMP/www6" "$port" > "$TMP/v6.log" 2>&1 &
PIDS+=($!)
wait_port ::1 "$port"
out=$(shimmed python3 -c "
import socket, sys
s = socket.create_connection(('six', $port), timeout=5)
s.sendall(b'GET /who HTTP/1.0\r\n\r\n')
data = b''
while chunk := s.recv(4096):
    data += chunk
print(s.family.name, data.split(b'\r\n\r\n', 1)[1].strip().decode())" 2> "$TMP/six.err") &&
    [ "$out" = "AF_INET6 backend-v6" ] || fail "dns, AAAA only: '$out' $(grep -v 'identity\|services' "$TMP/six.err" | tail -3)"
ok "dns, an AAAA record only: a fresh python3 by name ($out)"

# --- SRV: priority and weight --------------------------------------------
srv_client() {
    shimmed python3 - "$port" "$1" > "$TMP/srv.out" 2>"$TMP/srv.err" <<'PY' || fail "srv client: $(cat "$TMP/srv.err")"
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("orders-srv", 80), timeout=5)   # the port is the SRV record's
    s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    print(data.split(b"\r\n\r\n", 1)[1].strip().decode())
PY
}
srv_client 40
b2=$(count backend-2 "$TMP/srv.out")
b3=$(count backend-3 "$TMP/srv.out")
b4=$(count backend-4 "$TMP/srv.out")
[ "$b4" -eq 0 ] && [ "$b2" -ge 29 ] && [ "$b2" -le 31 ] && [ $((b2 + b3)) -eq 40 ] ||
    fail "srv 60/20 at priority 10, 10 at priority 20: got $b2/$b3/$b4"
ok "srv, 40 connections: weights 60/20 -> $b2/$b3, the priority-20 target $b4"

if ! under_asan; then
: > "$TMP/curl-srv.out"
for i in $(seq 1 4); do
    shimmed curl -sS --max-time 10 "http://orders-srv/who" >> "$TMP/curl-srv.out" 2>>"$TMP/curl.err" ||
        fail "curl by SRV name: $(cat "$TMP/curl.err")"
done
[ "$(count backend-4 "$TMP/curl-srv.out")" -eq 0 ] && [ "$(grep -c . "$TMP/curl-srv.out")" -eq 4 ] ||
    fail "curl srv: $(sort "$TMP/curl-srv.out" | uniq -c)"
ok "srv, 4 curl processes to http://orders-srv/ (port 80; the SRV records' port used): $(sort "$TMP/curl-srv.out" | uniq -c | tr -s ' ' | tr '\n' ' ')"
fi

kill "${PIDS[0]}" "${PIDS[1]}"
wait "${PIDS[0]}" "${PIDS[1]}" 2>/dev/null
srv_client 10
[ "$(count backend-4 "$TMP/srv.out")" -eq 10 ] || fail "failover to priority 20: $(sort "$TMP/srv.out" | uniq -c)"
ok "srv: both priority-10 targets down -> 10/10 on the priority-20 target"
start_backend 2 "$port"
start_backend 3 "$port"
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.3 "$port"

# --- records change; then the DNS server goes away ------------------------
shimmed python3 - "$port" "$TMP/changed" "$TMP/stopped" > "$TMP/loop.out" 2>"$TMP/loop.err" <<'PY' &
import os, socket, sys, time
port, changed, stopped = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def get():
    s = socket.create_connection(("orders", port), timeout=5)
    s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].strip().decode()
print("start", get(), flush=True)
while not os.path.exists(changed):
    time.sleep(0.01)
t0 = float(open(changed).read())
deadline = time.time() + 10
while time.time() < deadline:
    who = get()
    if who == "backend-4":
        print("switched %.2f" % (time.time() - t0), flush=True)
        break
    time.sleep(0.05)
for _ in range(10):
    print("after", get(), flush=True)
while not os.path.exists(stopped):
    time.sleep(0.01)
t1 = time.time()
n = 0
while time.time() < t1 + 4:            # several TTLs, every refresh failing
    print("stopped", get(), flush=True)
    n += 1
    time.sleep(0.1)
print("done", n, flush=True)
PY
loop=$!
PIDS+=($loop)
for i in $(seq 1 100); do grep -q start "$TMP/loop.out" && break; sleep 0.1; done
grep -q start "$TMP/loop.out" || fail "client loop did not start: $(cat "$TMP/loop.err")"
printf '127.0.0.4 orders.test\n127.0.0.2 n2.test\n127.0.0.3 n3.test\n127.0.0.4 n4.test\n' > "$TMP/hosts"
kill -HUP "$DNS_PID"
python3 -c 'import time; print(time.time())' > "$TMP/changed.tmp" && mv "$TMP/changed.tmp" "$TMP/changed"
for i in $(seq 1 150); do grep -q "^after" "$TMP/loop.out" && [ "$(grep -c '^after' "$TMP/loop.out")" -ge 10 ] && break; sleep 0.1; done
switched=$(awk '/^switched/ {print $2}' "$TMP/loop.out")
[ -n "$switched" ] || fail "never switched to the new record: $(cat "$TMP/loop.out" "$TMP/loop.err")"
python3 -c "import sys; sys.exit(0 if float('$switched') <= 2.2 else 1)" ||
    fail "the new record was used after ${switched}s (TTL 1 s + 1 s)"
[ "$(grep -c '^after backend-4' "$TMP/loop.out")" -eq 10 ] || fail "after the switch: $(grep '^after' "$TMP/loop.out" | sort | uniq -c)"
ok "records changed, dnsmasq reloaded: new connections on the new endpoint after ${switched}s, then 10/10"

kill "$DNS_PID"
wait "$DNS_PID" 2>/dev/null
touch "$TMP/stopped"
wait "$loop" || fail "client loop failed while the DNS server was down: $(tail -3 "$TMP/loop.err")"
n=$(awk '/^done/ {print $2}' "$TMP/loop.out")
[ "$n" -ge 10 ] && [ "$(grep -c '^stopped backend-4' "$TMP/loop.out")" -eq "$n" ] ||
    fail "with the DNS server down: $(grep '^stopped' "$TMP/loop.out" | sort | uniq -c)"
grep -q "dns orders.test: .*keeping the last good endpoints" "$TMP/loop.err" ||
    fail "no warning about the failed refresh: $(cat "$TMP/loop.err")"
ok "DNS server stopped: $n/$n connections over 4 s on the last good set, one warning: $(grep -m1 'dns orders.test: .*keeping the last good' "$TMP/loop.err")"
