# Resilience for blocking sockets (attempts in the caller's thread): retries
# on another endpoint, connect_timeout against a black hole, ejection after
# eject_after failures, the errno and one warning when every attempt fails,
# SO_SNDTIMEO, max_connections, fault_abort, signals (EINTR as the
# kernel gives it) and no local port left toward an endpoint (EADDRNOTAVAIL,
# in a network namespace). Clients: python3 blocking
# sockets (no timeout) and wget (blocking connect).
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"
shims python3

port=$(free_port)
start_backends "$port"          # 127.0.0.2-4; 127.0.0.3 is stopped below: refuses
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null
out=$(python3 -c "import socket; socket.create_connection(('127.0.0.3', $port), 2)" 2>&1) \
    && fail "127.0.0.3 should refuse"

start_black_hole 127.0.0.5 "$port"

# A stats folder of its own: the host's endpoint table in the default one
# outlives every test, and an entry of an earlier run's "orders" at
# 127.0.0.3 on the same port (ports are reused) held a failure already, so
# the refusing endpoint was ejected after one attempt here (seen once).
cat > "$TMP/mesh.ini" <<INI
[meshim]
log_level = info
stats_dir = $TMP/stats
[service:orders]
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
eject_after = 2
[service:hole]
endpoints = 127.0.0.2:$port, 127.0.0.5:$port, 127.0.0.4:$port
lb = round_robin
connect_timeout = 200ms
eject_after = 2
[service:down]
endpoints = 127.0.0.3:$port, 127.0.0.3:$((port + 1))
retries = 2
retry_backoff = 10ms
[service:void]
endpoints = 127.0.0.5:$port
connect_timeout = 5s
retries = 0
[service:small]
endpoints = 127.0.0.2:$port
max_connections = 2
[service:lone]
endpoints = 127.0.0.3:$port
eject_after = 1
retries = 0
[service:faulty]
endpoints = 127.0.0.2:$port
fault_abort = 30%
[service:fragile]
endpoints = 127.0.0.6:$port
eject_after = 1
retries = 0
panic_threshold = 50
INI
export MESHIM_CONFIG=$TMP/mesh.ini

# One backend refusing: 300 requests from one blocking client all succeed,
# and the refusing endpoint is tried twice, then ejected.
traced "$TMP/py.trace" python3 - "$port" > "$TMP/py.out" 2> "$TMP/py.err" <<'PY' || fail "blocking python3 client: $(tail -3 "$TMP/py.err")"
import http.client, sys
for _ in range(300):
    c = http.client.HTTPConnection("orders", int(sys.argv[1]))   # no timeout: a blocking socket
    c.request("GET", "/who")
    print(c.getresponse().read().decode().strip())
    c.close()
PY
[ "$(grep -c . "$TMP/py.out")" -eq 300 ] || fail "only $(grep -c . "$TMP/py.out") of 300 answers"
grep -q "backend-3" "$TMP/py.out" && fail "a refused endpoint answered?"
n=$(connects_to 127.0.0.3 "$TMP/py.trace")
[ "$n" -eq 2 ] || fail "127.0.0.3 tried $n times, want 2 (eject_after = 2)"
grep -q "orders: endpoint 127.0.0.3:$port ejected for 30s after consecutive failures" "$TMP/py.err" \
    || fail "no ejection warning: $(head -5 "$TMP/py.err")"
ok "one refusing backend: 300/300 blocking requests, 2 attempts on it, then ejected"

if under_asan; then
    echo "skip: wget under the shim (hangs with an ASan runtime preloaded; runs in the plain build)"
else
    for i in $(seq 1 30); do
        shimmed wget -q -O - "http://orders:$port/who" >> "$TMP/wget.out" 2>/dev/null || fail "wget $i failed"
    done
    [ "$(grep -c . "$TMP/wget.out")" -eq 30 ] || fail "wget: $(grep -c . "$TMP/wget.out") of 30"
    ok "one refusing backend: 30/30 wget processes"
fi

# A black hole with connect_timeout = 200ms: 50 requests all succeed; the
# black hole gets at most 2 attempts, then is ejected.
start=$(date +%s%N)
traced "$TMP/hole.trace" python3 - "$port" > "$TMP/hole.out" 2> "$TMP/hole.err" <<'PY' || fail "black hole: $(tail -3 "$TMP/hole.err")"
import http.client, sys
for _ in range(50):
    c = http.client.HTTPConnection("hole", int(sys.argv[1]))
    c.request("GET", "/who")
    print(c.getresponse().read().decode().strip())
    c.close()
PY
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$(grep -c . "$TMP/hole.out")" -eq 50 ] || fail "black hole: $(grep -c . "$TMP/hole.out") of 50"
n=$(connects_to 127.0.0.5 "$TMP/hole.trace")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "black hole tried $n times, want 1 or 2"
grep -q "hole: endpoint 127.0.0.5:$port ejected" "$TMP/hole.err" || fail "black hole not ejected"
ok "black hole, connect_timeout 200ms: 50/50 in ${ms} ms, $n timed-out attempts on it"

# Every endpoint refusing: ECONNREFUSED after 3 attempts and one warning.
out=$(shimmed python3 -c "
import socket, sys
try:
    socket.create_connection(('down', $port)); print('connected')
except ConnectionRefusedError: print('refused')
" 2>&1)
echo "$out" | grep -qx refused || fail "all down: $out"
[ "$(echo "$out" | grep -c 'down: connect failed after 3 attempts; last: 127.0.0.3:[0-9]*: Connection refused')" -eq 1 ] \
    || fail "want one warning for 3 failed attempts: $out"
ok "all endpoints down: ECONNREFUSED after 3 attempts, one warning"

# The only endpoint ejected: the next connect fails at once, saying why.
out=$(shimmed python3 -c "
import socket, time
for i in range(2):
    t = time.monotonic()
    try: socket.create_connection(('lone', $port)); print('connected')
    except ConnectionRefusedError: print('refused %d %.3f' % (i, time.monotonic() - t))
" 2>&1)
echo "$out" | grep -q "lone: endpoint 127.0.0.3:$port ejected for 30s" || fail "lone not ejected: $out"
echo "$out" | grep -Eq "lone: no healthy endpoint: all 1 are ejected or failing health checks \(an ejection ends in (29|30) s\)$" ||
    fail "no reason given, or not when it ends: $out"
echo "$out" | grep -Eq "^refused 1 0\.00" || fail "second connect did not fail at once: $out"
# Another process: the host's table refuses it too, and the line says whose
# ejection that is.
out=$(shimmed python3 -c "
import socket
try: socket.create_connection(('lone', $port)); print('connected')
except ConnectionRefusedError: print('refused')
" 2>&1)
echo "$out" | grep -Eq "lone: no healthy endpoint: .* \(an ejection ends in [0-9]+ s, made by another process of this host\)$" ||
    fail "another process was not told whose ejection refused it: $out"
ok "only endpoint ejected: the next connect is refused at once, with the reason and when it ends; in another process too, saying whose"

# The same with panic_threshold = 50 (Envoy's panic mode): the only endpoint
# ejected, its server back (a 4 s restart of a lone redis was refused for
# the next 30 s, host-wide), the next connect goes to it, reaches it and
# closes the circuit; the log says when the service went into panic and
# out, and meshim_lb_panic_total counts the pick.
out=$(shimmed python3 - "$port" "$TMP/stats" "$MESHIM_CMD" "$MESHIM_CMD_PRELOAD" <<'PY' 2>&1
import os, socket, subprocess, sys
port, stats, cmd, cmd_preload = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def dial(what):
    try:
        socket.create_connection(('fragile', port)).close(); print(what, 'connected')
    except ConnectionRefusedError: print(what, 'refused')
dial('down')
srv = socket.create_server(('127.0.0.6', port))      # the server is back
dial('back')
dial('again')
env = dict(os.environ, LD_PRELOAD=cmd_preload)     # the command itself is not meshed
prom = subprocess.run([cmd, 'stats', '--prometheus', '--dir', stats], env=env,
                      capture_output=True, text=True).stdout
print(''.join(l for l in prom.splitlines(True)
              if l.startswith('meshim_lb_panic_total{') and 'service="fragile"' in l and
              'pid="%d"' % os.getpid() in l), end='')
PY
)
echo "$out" | grep -q "fragile: endpoint 127.0.0.6:$port ejected for 30s" || fail "fragile not ejected: $out"
[ "$(echo "$out" | grep -E '^(down|back|again) ' | tr '\n' ' ')" = "down refused back connected again connected " ] ||
    fail "panic_threshold = 50: the server back, connects still refused: $out"
echo "$out" | grep -q "fragile: panic: 0 of 1 endpoints usable, below panic_threshold 50%" ||
    fail "no line says the service went into panic: $out"
echo "$out" | grep -q "fragile: out of panic: 1 of 1 endpoints usable" || fail "no line says it left panic: $out"
echo "$out" | grep -Eq '^meshim_lb_panic_total\{.*\} 1$' || fail "meshim_lb_panic_total is not 1: $out"
ok "panic_threshold = 50: the only endpoint ejected and back, the next connect reaches it and closes the circuit; logged, counted"

# A black hole and SO_SNDTIMEO shorter than connect_timeout: ETIMEDOUT, bounded by SO_SNDTIMEO.
out=$(shimmed python3 -c "
import socket, struct, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack('ll', 0, 300000))
t = time.monotonic()
try:
    s.connect((socket.gethostbyname('void'), $port)); print('connected')
except TimeoutError: print('timeout %.2f' % (time.monotonic() - t))
" 2>/dev/null)
case "$out" in "timeout 0."[2-9]*) ;; *) fail "SO_SNDTIMEO 300ms: $out" ;; esac
# After a timed-out connect the socket is closed, not still dialling (the
# first byte of TCP_INFO is the TCP state: 2 SYN_SENT, 7 CLOSE).
out=$(shimmed python3 -c "
import socket, struct
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack('ll', 0, 200000))
try: s.connect((socket.gethostbyname('void'), $port))
except TimeoutError: pass
state = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
print('unconnected' if state == 7 else 'tcp state %d' % state)
" 2>/dev/null)
[ "$out" = "unconnected" ] || fail "a timed-out socket was left dialling: $out"
ok "SO_SNDTIMEO shorter than connect_timeout bounds the attempt: $out s, ETIMEDOUT"

# max_connections = 2: the third concurrent connection fails at once.
out=$(shimmed python3 -c "
import socket
a = socket.create_connection(('small', $port)); b = socket.create_connection(('small', $port))
try:
    socket.create_connection(('small', $port)); print('third connected')
except ConnectionRefusedError: print('third refused')
a.close()
c = socket.create_connection(('small', $port)); print('after close: connected')
" 2>&1)
echo "$out" | grep -qx "third refused" && echo "$out" | grep -qx "after close: connected" \
    || fail "max_connections: $out"
echo "$out" | grep -q "small: max_connections (2) reached" || fail "no overflow warning: $out"
ok "max_connections = 2: third refused at once, room again after a close"

# fault_abort = 30% over 300 connections: within 4 standard deviations (~8).
n=$(shimmed python3 -c "
import socket
failed = 0
for _ in range(300):
    try: socket.create_connection(('faulty', $port)).close()
    except ConnectionRefusedError: failed += 1
print(failed)
" 2>/dev/null)
[ "$n" -ge 58 ] && [ "$n" -le 122 ] || fail "fault_abort 30%: $n of 300 failed"
ok "fault_abort = 30%: $n of 300 connections failed on purpose"

# A port-less endpoint keeps a circuit per destination port: a port that
# refuses ejects the address for that port only, and the application's
# other ports on it go on (before: one refused port took the address away
# from all of them). Its own stats folder: a circuit in the host's table of
# another test must not stand in for this one's.
dead=$(free_port)
cat > "$TMP/ports.ini" <<INI
[service:multi]
hosts = multi
endpoints = 127.0.0.2
retries = 0
eject_after = 1
eject_time = 60s
INI
out=$(MESHIM_STATS_DIR=$TMP/ports-stats MESHIM_CONFIG=$TMP/ports.ini shimmed python3 -c "
import socket
for what, port in (('dead', $dead), ('dead again', $dead), ('live', $port), ('dead after', $dead)):
    try:
        socket.create_connection(('multi', port), 5).close(); print(what, 'connected')
    except OSError as e: print(what, 'failed', e.errno)
" 2>"$TMP/ports.err")
want="dead failed 111|dead again failed 111|live connected|dead after failed 111"
[ "$(echo "$out" | tr '\n' '|' | sed 's/|$//')" = "$want" ] \
    || fail "a refused port took the address from the others: $out $(cat "$TMP/ports.err")"
grep -q "multi: endpoint 127.0.0.2:$dead ejected" "$TMP/ports.err" \
    || fail "the ejection does not name the port: $(cat "$TMP/ports.err")"
grep -q "multi: no healthy endpoint" "$TMP/ports.err" \
    || fail "the refused port's circuit did not open: $(cat "$TMP/ports.err")"
ok "port-less endpoint: $dead refused and ejected ($(grep -m1 'ejected' "$TMP/ports.err" | sed 's/^meshim\[[0-9]*\]: //')), $port still connects"

# Signals. A handler without SA_RESTART cuts a blocking connect short, as the
# kernel's own: connect() fails with EINTR at once and the connect goes on
# in the engine, with the retries left. python3's handlers have no
# SA_RESTART. Per-process state: the black hole is ejected in the host's
# table by the stages above.
cat > "$TMP/signals.ini" <<INI
[meshim]
shared_state = off
[service:stall]
endpoints = 127.0.0.5:$port
connect_timeout = 3s
retries = 2
[service:half]
endpoints = 127.0.0.5:$port, 127.0.0.2:$port
lb = round_robin
connect_timeout = 1s
retries = 1
INI
# alarm(1) around a connect to the black hole: its exception after 1 s, not
# after 3 attempts of 3 s.
out=$(MESHIM_CONFIG=$TMP/signals.ini shimmed python3 -c "
import signal, socket, time
class Alarm(Exception): pass
def raise_alarm(*a): raise Alarm()
signal.signal(signal.SIGALRM, raise_alarm)
t = time.monotonic()
signal.alarm(1)
try:
    socket.create_connection(('stall', $port)); print('connected')
except Alarm:
    print('alarm %.1f' % (time.monotonic() - t))
" 2> "$TMP/signals.err")
case "$out" in "alarm 1."[0-9]) ;; *) fail "alarm(1) around a blocking connect: '$out' $(tail -2 "$TMP/signals.err")" ;; esac
# A handler that returns: it runs at 0.3 s, while the connect goes on (the
# black hole's 1 s, then the retry on the live endpoint) and python3 waits
# for it; every connect is answered. Round robin from a random start: of 4
# connects, 2 meet the black hole first.
out=$(MESHIM_CONFIG=$TMP/signals.ini shimmed python3 -c "
import signal, socket, time
fired = []
signal.signal(signal.SIGALRM, lambda *a: fired.append(time.monotonic()))
for i in range(4):
    t = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    s = socket.create_connection(('half', $port))
    took = time.monotonic() - t
    signal.setitimer(signal.ITIMER_REAL, 0)
    s.sendall(b'GET /who HTTP/1.0\r\n\r\n')
    data = b''
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    ran = ['%.1f' % (f - t) for f in fired if f >= t]
    print(data.split(b'\r\n\r\n', 1)[1].strip().decode(), 'slow' if took > 0.9 else 'fast', ' '.join(ran) or '-')
" 2> "$TMP/signals.err") || fail "a handler that returns: $(tail -3 "$TMP/signals.err")"
[ "$(echo "$out" | grep -c '^backend-2 ')" = 4 ] || fail "a handler that returns: not every connect answered: $out"
slow=$(echo "$out" | grep -c ' slow ' || true)
[ "$slow" = 2 ] && ! echo "$out" | grep ' slow ' | grep -qv ' slow 0\.[0-4]$' ||
    fail "a handler that returns ran late, or the black hole was not met twice: $out"
ok "signals: alarm(1) cut a blocking connect to a black hole short (1.x s, not 9 s); a handler that returns ran at 0.3 s while 2 of 4 connects went on past the black hole, all answered"
# Handlers with SA_RESTART only (siginterrupt(False), SIGINT's default
# back): the kernel's connect would go on waiting, and so does the shim's.
# restarting SIGINT_LINE: 4 connects to half with SIGALRM (SA_RESTART) due
# 0.3 s in; prints "restarted K", K the connects that met the black hole
# and whose handler ran only after the connect returned.
restarting() {
    MESHIM_CONFIG=$TMP/signals.ini shimmed python3 -c "
import signal, socket, time
$1
fired = []
signal.signal(signal.SIGALRM, lambda *a: fired.append(time.monotonic()))
signal.siginterrupt(signal.SIGALRM, False)
ok = 0
for i in range(4):
    t = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    socket.create_connection(('half', $port)).close()
    if time.monotonic() - t > 0.9:
        ok += all(f - t > 0.9 for f in fired if f >= t)
print('restarted', ok)
" 2> "$TMP/signals.err"
}
out=$(restarting "signal.signal(signal.SIGINT, signal.SIG_DFL)")
[ "$out" = "restarted 2" ] || fail "SA_RESTART handlers: '$out' $(tail -2 "$TMP/signals.err")"
ok "signals: with SA_RESTART handlers only, a blocking connect kept waiting through the signal (as the kernel's)"
# The same beside a handler without SA_RESTART that does not come
# (python3's own for SIGINT): the kernel restarts by the handler of the
# signal that came, and so does the shim (its trampoline says which ran).
# Before, any such handler installed made every signal cut the connect.
out=$(restarting "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler")
[ "$out" = "restarted 2" ] || fail "an SA_RESTART handler beside one without: '$out' $(tail -2 "$TMP/signals.err")"
ok "signals: an SA_RESTART handler's signal let a blocking connect wait on, beside python3's SIGINT handler without SA_RESTART"

# No local port left toward one endpoint (its TIME_WAIT connections hold
# them: here ten ports, all held open): connect() says EADDRNOTAVAIL, and
# another endpoint is another destination whose ports are counted apart,
# so the attempt is retried there. In a network namespace of its own (the
# port range is the namespace's); blocking and non-blocking sockets, round
# robin, so half the picks meet the exhausted endpoint.
if unshare -n true 2> /dev/null; then
    cat > "$TMP/ports.ini" <<INI
[meshim]
log_level = info
stats_dir = $TMP/stats
[service:pair]
endpoints = 127.0.0.2:8080, 127.0.0.3:8080
lb = round_robin
INI
    : > "$TMP/ports.err"
    out=$(env PRELOAD="$MESHIM_PRELOAD" INI="$TMP/ports.ini" ERR="$TMP/ports.err" unshare -n bash -c '
        ip link set lo up && echo "40000 40009" > /proc/sys/net/ipv4/ip_local_port_range || exit 1
        python3 -m http.server 8080 --bind 127.0.0.2 > /dev/null 2>&1 & a=$!
        python3 -m http.server 8080 --bind 127.0.0.3 > /dev/null 2>&1 & b=$!
        python3 - <<PY
import os, socket, struct, subprocess, sys, time
# Both listening (60 s at most). Each probe ends with a reset: closed
# first by us, it would hold its port toward the server in FIN_WAIT2 until
# a busy server closed its side (and only TIME_WAIT is reused), one of the
# ten ports the connections below need.
for host in ("127.0.0.2", "127.0.0.3"):
    for _ in range(600):
        try:
            probe = socket.create_connection((host, 8080))
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            probe.close(); break
        except OSError:
            time.sleep(0.1)
held = [socket.create_connection(("127.0.0.2", 8080)) for _ in range(10)]
try:
    socket.create_connection(("127.0.0.2", 8080)); print("a port was left")
except OSError as e:
    print("direct:", e.strerror)
code = """
import socket
ok = 0
for timeout in (None, 5):                         # blocking, then non-blocking
    socks = []
    for _ in range(4):
        try:
            socks.append(socket.create_connection(("pair", 8080), timeout=timeout)); ok += 1
        except OSError as e:
            print("timeout=%s: %s" % (timeout, e.strerror))
    for s in socks: s.close()
print("meshed: %d of 8" % ok)
"""
env = dict(os.environ, LD_PRELOAD=os.environ["PRELOAD"], MESHIM_CONFIG=os.environ["INI"])
r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
open(os.environ["ERR"], "w").write(r.stderr)
print(r.stdout.strip())
PY
        kill $a $b' 2> "$TMP/ports.ns.err")
    [ "$out" = "direct: Cannot assign requested address
meshed: 8 of 8" ] || fail "no local port left toward one endpoint: $out $(tail -n 3 "$TMP/ports.ns.err" "$TMP/ports.err")"
    grep -q "pair: attempt 1 to 127.0.0.2:8080 failed: Cannot assign requested address" "$TMP/ports.err" ||
        fail "no local port left: the exhausted endpoint was never picked: $(tail -3 "$TMP/ports.err")"
    ok "no local port left toward one endpoint (EADDRNOTAVAIL): retried on the other, 8 of 8 connects (blocking and non-blocking)"
else
    echo "skip: no network namespace (unshare -n): the EADDRNOTAVAIL part"
fi
