# Resilience as event loops and long-running clients see it: a black hole
# under asyncio (the loop must never stall), a backend killed and restarted
# under load, max_connections, active health checks and fault injection,
# all with non-blocking sockets.
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_backends "$port"          # 127.0.0.2-4; 127.0.0.3 is stopped: it refuses
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null
start_black_hole 127.0.0.5 "$port"

start_backend 7 "$port"; backend_pid_7=$BACKEND_PID
wait_port 127.0.0.7 "$port"

cat > "$TMP/mesh.ini" <<INI
[meshim]
log_level = info
; each client here must meet the failing endpoints itself: what one
; process's ejections do for the next is t_shared_state's
shared_state = off
[service:hole]
endpoints = 127.0.0.2:$port, 127.0.0.5:$port, 127.0.0.4:$port
lb = round_robin
connect_timeout = 200ms
eject_after = 2
[service:restart]
endpoints = 127.0.0.2:$port, 127.0.0.7:$port
lb = round_robin
eject_after = 1
eject_time = 1s
[service:small]
endpoints = 127.0.0.2:$port
max_connections = 2
[service:checked]
lb = round_robin
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
health_check = tcp
health_interval = 100ms
health_timeout = 100ms
healthy_threshold = 1
unhealthy_threshold = 1
retries = 0
[service:httpchecked]
lb = round_robin
endpoints = 127.0.0.2:$port, 127.0.0.4:$port, 127.0.0.7:$port
health_check = http
health_path = /healthz
health_interval = 100ms
health_timeout = 500ms
healthy_threshold = 1
unhealthy_threshold = 1
retries = 0
[service:delayed]
endpoints = 127.0.0.2:$port
fault_delay = 300ms
fault_delay_percent = 100%
[service:sometimes]
endpoints = 127.0.0.2:$port
fault_delay = 60ms
fault_delay_percent = 50%
[service:faulty]
endpoints = 127.0.0.2:$port
fault_abort = 30%
INI
export MESHIM_CONFIG=$TMP/mesh.ini

# --- a black hole: 50 sequential requests from python3 (timeout: non-blocking)
traced "$TMP/hole.trace" python3 - "$port" > "$TMP/hole.out" 2> "$TMP/hole.err" <<'PY' \
    || fail "black hole: $(tail -3 "$TMP/hole.err")"
import http.client, sys
for _ in range(50):
    c = http.client.HTTPConnection("hole", int(sys.argv[1]), timeout=5)
    c.request("GET", "/who")
    print(c.getresponse().read().decode().strip())
    c.close()
PY
[ "$(grep -c . "$TMP/hole.out")" -eq 50 ] || fail "black hole: $(grep -c . "$TMP/hole.out") of 50"
n=$(connects_to 127.0.0.5 "$TMP/hole.trace")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "black hole tried $n times, want 1 or 2"
grep -q "hole: endpoint 127.0.0.5:$port ejected" "$TMP/hole.err" || fail "black hole not ejected"
ok "black hole, python3 with a timeout: 50/50, $n timed-out attempts on it, then ejected"

# --- the same under asyncio: a ticker measures how long the loop stalls ------
shimmed python3 - "$port" > "$TMP/aio.out" 2> "$TMP/aio.err" <<'PY' || fail "asyncio: $(tail -3 "$TMP/aio.err")"
import asyncio, sys, time
port = int(sys.argv[1])
async def ticker(stop, worst):
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        worst[0] = max(worst[0], now - last)
        last = now
async def fetch():
    r, w = await asyncio.open_connection("hole", port)
    w.write(b"GET /who HTTP/1.0\r\n\r\n")
    data = await r.read()
    w.close()
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()
async def main():
    stop, worst = asyncio.Event(), [0.0]
    t = asyncio.create_task(ticker(stop, worst))
    bodies = [await fetch() for _ in range(50)]
    stop.set(); await t
    print(len([b for b in bodies if b.startswith("backend-")]), "%.0f" % (worst[0] * 1000))
asyncio.run(main())
PY
read -r got stall < "$TMP/aio.out"
[ "$got" -eq 50 ] || fail "asyncio black hole: $got of 50"
grep -q "hole: attempt 1 to 127.0.0.5:$port failed: Connection timed out" "$TMP/aio.err" \
    || fail "asyncio never met the black hole: $(cat "$TMP/aio.err")"
# A connect that blocked the loop would stall it for connect_timeout (200 ms)
# at least; 150 leaves a busy machine's scheduling and python's own pauses
# out of it (50 failed once at 51).
[ "$stall" -le 150 ] || fail "asyncio event loop stalled ${stall} ms (want <= 150, under connect_timeout)"
ok "asyncio, 50 requests, black hole met and ejected: 50/50, longest loop stall ${stall} ms"

# --- a backend killed (SIGKILL) and restarted under load ---------------------
shimmed python3 - "$port" "$TMP/progress" > "$TMP/load.out" 2> "$TMP/load.err" <<'PY' &
import http.client, os, sys, time
port, progress = int(sys.argv[1]), sys.argv[2]
ok = failed = 0
deadline = time.monotonic() + 30
while ok + failed < 600 and time.monotonic() < deadline:
    try:
        c = http.client.HTTPConnection("restart", port, timeout=5)
        c.request("GET", "/who")
        print(c.getresponse().read().decode().strip(), flush=True)
        c.close(); ok += 1
    except Exception as e:
        print("FAILED", e, flush=True); failed += 1
    if (ok + failed) % 20 == 0:
        open(progress, "w").write(str(ok + failed))
    if ok + failed == 100:
        # The backend is killed here, between two requests: a request cut
        # off after it was sent is not a connect failure (nothing is retried
        # once bytes went out), so the kill must not land inside one.
        while not os.path.exists(progress + ".go") and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(0.01)
PY
load=$!
PIDS+=($load)
wait_progress() {   # wait_progress N: the load client has made N requests
    local i
    for i in $(seq 1 300); do
        [ "$(cat "$TMP/progress" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 0.1
    done
    fail "load client stuck before $1 requests: $(tail -3 "$TMP/load.err")"
}
wait_progress 100
kill -9 "$backend_pid_7"; wait "$backend_pid_7" 2>/dev/null
touch "$TMP/progress.go"
wait_progress 200
: > "$TMP/backend7.log"
start_backend 7 "$port"
wait_port 127.0.0.7 "$port"
wait "$load" || fail "load client: $(tail -3 "$TMP/load.err")"
grep -q FAILED "$TMP/load.out" && fail "requests failed while a backend restarted: $(grep FAILED "$TMP/load.out" | head -3)"
total=$(grep -c . "$TMP/load.out")
[ "$total" -eq 600 ] || fail "load client made $total of 600 requests"
after=$(grep -c '"GET /who' "$TMP/backend7.log" || true)
[ "$after" -ge 20 ] || fail "restarted backend got $after requests after its ejection ended"
ok "backend killed and restarted under load: 600/600, the restarted one served $after again"

# --- max_connections, non-blocking (asyncio) --------------------------------
out=$(shimmed python3 - "$port" 2>&1 <<'PY'
import asyncio, sys, time
port = int(sys.argv[1])
async def main():
    held = [await asyncio.open_connection("small", port) for _ in range(2)]
    t = time.monotonic()
    try:
        await asyncio.open_connection("small", port); print("third connected")
    except ConnectionRefusedError:
        print("third refused %.3f" % (time.monotonic() - t))
    held[0][1].close(); await held[0][1].wait_closed()
    await asyncio.open_connection("small", port); print("room again")
asyncio.run(main())
PY
)
echo "$out" | grep -Eq "^third refused 0\.00" || fail "max_connections: $out"
echo "$out" | grep -qx "room again" || fail "max_connections after a close: $out"
echo "$out" | grep -q "small: max_connections (2) reached" || fail "max_connections: no warning: $out"
ok "max_connections = 2, asyncio: the third refused at once, with the reason; room after a close"

# --- active health checks take a dead endpoint out before a client meets it --
shimmed python3 - "$port" > "$TMP/hc.out" 2> "$TMP/hc.err" <<'PY' || fail "health: $(tail -3 "$TMP/hc.err")"
import http.client, socket, sys, time
port = int(sys.argv[1])
socket.getaddrinfo("checked", port)      # the checks start here, ahead of any connect
time.sleep(0.5)
for _ in range(60):                      # retries = 0: a connect to the dead one would fail
    c = http.client.HTTPConnection("checked", port, timeout=5)
    c.request("GET", "/who")
    print(c.getresponse().read().decode().strip())
    c.close()
PY
[ "$(grep -c . "$TMP/hc.out")" -eq 60 ] || fail "health: $(grep -c . "$TMP/hc.out") of 60"
grep -q "checked: endpoint 127.0.0.3:$port is down (health check): Connection refused" "$TMP/hc.err" \
    || fail "health: no down line, or not why: $(cat "$TMP/hc.err")"
grep -q "attempt .* failed" "$TMP/hc.err" && fail "health: a client met the dead endpoint: $(cat "$TMP/hc.err")"
ok "health_check = tcp: the dead endpoint marked down before any request, 60/60 on the others"

# ... and back up once it answers again.
shimmed python3 - "$port" "$TMP/www3" > "$TMP/hc2.out" 2> "$TMP/hc2.err" <<'PY' || fail "health up: $(tail -3 "$TMP/hc2.err")"
import http.client, socket, subprocess, sys, time, os
port = int(sys.argv[1])
socket.getaddrinfo("checked", port)
time.sleep(0.5)
env = dict(os.environ); env.pop("LD_PRELOAD", None)
srv = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.3",
                        "--directory", sys.argv[2], str(port)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    time.sleep(1.0)
    for _ in range(30):
        c = http.client.HTTPConnection("checked", port, timeout=5)
        c.request("GET", "/who")
        print(c.getresponse().read().decode().strip())
        c.close()
finally:
    srv.terminate(); srv.wait()
PY
grep -q "checked: endpoint 127.0.0.3:$port is up again (health check)" "$TMP/hc2.err" \
    || fail "health: no up line: $(cat "$TMP/hc2.err")"
[ "$(count backend-3 "$TMP/hc2.out")" -ge 5 ] || fail "health: backend-3 back up got $(count backend-3 "$TMP/hc2.out") of 30"
ok "health_check: the endpoint back up gets traffic again ($(count backend-3 "$TMP/hc2.out") of 30)"

# --- health_check = http: an endpoint that accepts connections but answers
# its health path 404 is out (a tcp check would keep it in), and back in
# once it answers 200. Readiness: the backend's own log of the checks (the
# round after a verdict starts only once the verdict is in).
echo ok > "$TMP/www2/healthz"; echo ok > "$TMP/www4/healthz"      # not 7's
shimmed python3 - "$port" "$TMP/www7" "$TMP/backend7.log" > "$TMP/hh.out" 2> "$TMP/hh.err" <<'PY' \
    || fail "http health: $(tail -3 "$TMP/hh.err")"
import http.client, socket, sys, time
port, www7, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def checks(status):
    return sum(1 for l in open(log) if '"GET /healthz HTTP/1.1" %d' % status in l)
def after(status, n):                   # n checks answered `status` (bounded: 30 s)
    for _ in range(300):
        if checks(status) >= n: return
        time.sleep(0.1)
    sys.exit("no %d health checks answered %d" % (n, status))
def fetch(n, tag):
    for _ in range(n):
        c = http.client.HTTPConnection("httpchecked", port, timeout=5)
        c.request("GET", "/who")
        print(tag, c.getresponse().read().decode().strip())
        c.close()
socket.getaddrinfo("httpchecked", port)     # the checks start here
after(404, 2)
fetch(60, "down")
open(www7 + "/healthz", "w").write("ok\n")
after(200, 2)
fetch(30, "up")
PY
[ "$(grep -c '^down backend-7' "$TMP/hh.out")" -eq 0 ] && [ "$(grep -c '^down ' "$TMP/hh.out")" -eq 60 ] ||
    fail "http health: backend-7 answered its check 404 and still got $(grep -c '^down backend-7' "$TMP/hh.out") of 60"
grep -q "httpchecked: endpoint 127.0.0.7:$port is down (health check): GET /healthz answered 404" "$TMP/hh.err" ||
    fail "http health: no down line, or not why: $(cat "$TMP/hh.err")"
grep -q "httpchecked: endpoint 127.0.0.7:$port is up again (health check)" "$TMP/hh.err" ||
    fail "http health: no up line: $(cat "$TMP/hh.err")"
[ "$(grep -c '^up backend-7' "$TMP/hh.out")" -ge 5 ] ||
    fail "http health: backend-7 back (200) got $(grep -c '^up backend-7' "$TMP/hh.out") of 30"
grep -q "httpchecked: endpoint 127.0.0.[24]:$port is down" "$TMP/hh.err" && fail "http health: a 200 endpoint marked down"
ok "health_check = http: the endpoint whose /healthz says 404 out (0 of 60, a tcp check would keep it), back at 200 ($(grep -c '^up backend-7' "$TMP/hh.out") of 30)"

# --- fault injection ---------------------------------------------------------
out=$(shimmed python3 - "$port" 2>/dev/null <<'PY'
import asyncio, sys, time
port = int(sys.argv[1])
async def ticker(stop, worst):
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic(); worst[0] = max(worst[0], now - last); last = now
async def main():
    stop, worst = asyncio.Event(), [0.0]
    t = asyncio.create_task(ticker(stop, worst))
    took = []
    for _ in range(5):
        s = time.monotonic()
        r, w = await asyncio.open_connection("delayed", port)
        took.append(time.monotonic() - s); w.close()
    stop.set(); await t
    print("%.0f %.0f" % (min(took) * 1000, worst[0] * 1000))
asyncio.run(main())
PY
)
read -r least stall <<< "$out"
[ "${least:-0}" -ge 290 ] || fail "fault_delay 300ms: fastest connect took ${least:-?} ms"
[ "${stall:-999}" -le 150 ] || fail "fault_delay stalled the asyncio loop ${stall} ms (want <= 150, under the 300 ms delay)"
ok "fault_delay = 300ms, asyncio: every connect took >= ${least} ms, loop stall ${stall} ms"

out=$(shimmed python3 - "$port" 2>/dev/null <<'PY'
import socket, sys, time
port = int(sys.argv[1])
slow = refused = 0
for _ in range(120):
    t = time.monotonic()
    socket.create_connection(("sometimes", port), timeout=5).close()
    slow += time.monotonic() - t >= 0.055
for _ in range(300):
    try: socket.create_connection(("faulty", port), timeout=5).close()
    except ConnectionRefusedError: refused += 1
print(slow, refused)
PY
)
read -r slow refused <<< "$out"
# Binomial: 120 x 50 % (sd 5.5) and 300 x 30 % (sd 7.9); +-4 sd.
[ "${slow:-0}" -ge 38 ] && [ "$slow" -le 82 ] || fail "fault_delay_percent 50%: $slow of 120 delayed"
[ "${refused:-0}" -ge 58 ] && [ "$refused" -le 122 ] || fail "fault_abort 30%: $refused of 300 refused"
ok "fault_delay_percent 50%: $slow of 120 delayed; fault_abort 30%: $refused of 300 refused (non-blocking)"
