# A service found by DNS whose server never answers: the first answer is
# waited for one connect_timeout in all. python3's create_connection asks
# getaddrinfo (which waits for the answer, to know the address family) and
# then connects, which waited again: it failed after 2 x connect_timeout
# (4.01 s here). Once that wait has passed, later connects fail at once
# with the reason, until an answer comes.
. "$(dirname "$0")/lib.sh"

# The server: a UDP socket that never reads.
dns_port=$(free_port)
python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', int(sys.argv[1])))
time.sleep(600)" "$dns_port" > "$TMP/dns.out" 2>&1 &
PIDS+=($!)
wait_udp "$dns_port"
cat > "$TMP/mesh.ini" <<INI
[meshim]
dns_server = 127.0.0.1:$dns_port
[service:mute]
dns = mute.test
connect_timeout = 2s
INI

out=$(MESHIM_CONFIG=$TMP/mesh.ini shimmed python3 -c "
import asyncio, socket, time
def timed(f):
    t = time.monotonic()
    try:
        f()
        return 'connected'
    except OSError:
        return '%.2f' % (time.monotonic() - t)
first = timed(lambda: socket.create_connection(('mute', 80), timeout=30))
second = timed(lambda: socket.create_connection(('mute', 80), timeout=30))
third = timed(lambda: asyncio.run(asyncio.wait_for(asyncio.open_connection('mute', 80), 30)))
print(first, second, third)" 2> "$TMP/client.err") || fail "client: $(tail -3 "$TMP/client.err")"
read -r first second third <<< "$out"
awk -v a="$first" -v b="$second" -v c="$third" 'BEGIN { exit !(a >= 1.5 && a < 3.5 && b < 1.5 && c < 1.5) }' ||
    fail "waits for a DNS server that never answers (connect_timeout 2 s): first $first s, second $second s, asyncio $third s (want about 2, then at once): $(grep -v '^meshim' "$TMP/client.err" | tail -3)"
grep -q "no endpoints yet: dns mute.test has not been answered" "$TMP/client.err" ||
    fail "no warning says why: $(tail -3 "$TMP/client.err")"
ok "DNS that never answers (connect_timeout 2 s): the first connect failed after $first s, the next at once ($second s, asyncio $third s), with the reason"
