#!/usr/bin/env bash
# Observability (SPEC §3.7) against a scripted scenario whose ground truth
# the client itself records: the stats file, `meshim stats`, the exporter
# (checked by promtool and scraped by a real Prometheus server) and the
# access log must all agree with it exactly.
#
# One python3 process, blocking and asyncio (non-blocking) sockets:
#   orders  3 endpoints, one refusing, round_robin, eject_after = 3:
#           40 requests closed + 1 held open, exactly 3 refused attempts
#           (then the endpoint is ejected), 3 retries, 1 ejection;
#   dead    its only endpoint refuses, retries = 0: 5 refused;
#   limited max_connections = 1: 3 overflows while one is held;
#   faulty  fault_abort = 100%: 4 faults;
#   gone    eject_after = 1: 1 refused, then 1 no_endpoint.
# Then a fork child makes 2 connections of its own: it counts them into its
# own file, and the parent's counts do not move.
. "$(dirname "$0")/lib.sh"
unset MESHIM_STATS_DIR     # its INI files name the stats folders it checks

port=$(free_port)
start_backends "$port"
kill "${PIDS[2]}"; wait "${PIDS[2]}" 2>/dev/null       # 127.0.0.4 refuses
STATS=$TMP/stats
cat > "$TMP/mesh.ini" <<INI
[meshim]
stats_dir = $STATS
access_log = $TMP/access.log
log_file = $TMP/meshim.log
[defaults]
retry_backoff = 1ms
retry_budget = 100%
[service:orders]
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
retries = 2
eject_after = 3
eject_time = 300s
[service:dead]
endpoints = 127.0.0.4:$port
retries = 0
eject_after = 1000
[service:limited]
endpoints = 127.0.0.2:$port
max_connections = 1
[service:faulty]
endpoints = 127.0.0.2:$port
fault_abort = 100%
[service:gone]
endpoints = 127.0.0.4:$port
retries = 0
eject_after = 1
eject_time = 300s
INI
export MESHIM_CONFIG=$TMP/mesh.ini

cat > "$TMP/client.py" <<'PY'
import asyncio, json, os, socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
REQ = b"GET /who HTTP/1.0\r\nHost: orders\r\n\r\n"
truth = {"sent": 0, "received": 0, "errors": {}}

def fetch_blocking(name):
    s = socket.create_connection((name, port))
    s.sendall(REQ)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    s.close()
    truth["sent"] += len(REQ); truth["received"] += len(got)

async def fetch_async(name):
    r, w = await asyncio.open_connection(name, port)
    w.write(REQ); await w.drain()
    got = await r.read()
    w.close(); await w.wait_closed()
    truth["sent"] += len(REQ); truth["received"] += len(got)

def refused(name, n):
    for _ in range(n):
        try:
            socket.create_connection((name, port)).close()
            raise SystemExit(f"{name}: connected, expected a failure")
        except ConnectionRefusedError:
            truth["errors"][name] = truth["errors"].get(name, 0) + 1

for i in range(20):
    fetch_blocking("orders")
async def twenty():
    for i in range(20):
        await fetch_async("orders")
asyncio.run(twenty())
held = socket.create_connection(("orders", port))          # open while stats are read
refused("dead", 5)
one = socket.create_connection(("limited", port))
refused("limited", 3)
refused("faulty", 4)
refused("gone", 2)
json.dump(truth, open(out + ".tmp", "w")); os.rename(out + ".tmp", out)

child = os.fork()
if child == 0:
    for i in range(2):
        fetch_blocking("orders")
    open(out + ".child", "w").write(str(os.getpid()))
    os.read(0, 1)
    os._exit(0)
os.read(0, 1)                       # the test says when (one byte each, unbuffered)
os.waitpid(child, 0)
PY

mkfifo "$TMP/go"
# Not through shimmed(): a function in the background is a subshell, and
# $! must be python3's own pid (env execs it).
env LD_PRELOAD="$MESHIM_PRELOAD" python3 "$TMP/client.py" "$port" "$TMP/truth.json" \
    < "$TMP/go" > "$TMP/client.out" 2>&1 &
CLIENT=$!
PIDS+=($CLIENT)
exec 7>"$TMP/go"
for i in $(seq 1 300); do [ -f "$TMP/truth.json.child" ] && break; sleep 0.1; done
[ -f "$TMP/truth.json.child" ] || fail "client did not finish its scenario: $(cat "$TMP/client.out")"
CHILD=$(cat "$TMP/truth.json.child")
read -r SENT RECEIVED < <(python3 -c "import json; t=json.load(open('$TMP/truth.json')); print(t['sent'], t['received'])")
[ "$SENT" -gt 0 ] && [ "$RECEIVED" -gt 0 ] || fail "client recorded no traffic"

# --- the stats, as Prometheus text --------------------------------------
meshim stats --prometheus --dir "$STATS" > "$TMP/prom.txt" || fail "meshim stats --prometheus"
# value METRIC LABELS: the sample whose labels are exactly these plus
# process and pid (the parent's unless PID= is given).
value() {
    python3 - "$TMP/prom.txt" "$1" "$2" "${PID:-$CLIENT}" <<'PY'
import re, sys
path, metric, labels, pid = sys.argv[1:]
want = dict(re.findall(r'(\w+)="([^"]*)"', labels)); want.update(process="python3", pid=pid)
for line in open(path):
    m = re.match(r'(\w+)\{(.*)\} (\S+)$', line.strip())
    if m and m.group(1) == metric and dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))) == want:
        print(m.group(3)); break
else:
    print("missing")
PY
}
expect() {
    local got
    got=$(value "$1" "$2")
    [ "$got" = "$3" ] || fail "$1{$2} = $got, want $3"
}
ep() { echo "127.0.0.$1:$port"; }
ok_2=$(value meshim_connections_total "service=\"orders\",endpoint=\"$(ep 2)\",result=\"ok\"")
ok_3=$(value meshim_connections_total "service=\"orders\",endpoint=\"$(ep 3)\",result=\"ok\"")
[ "$ok_2" != missing ] && [ "$ok_3" != missing ] && [ $((ok_2 + ok_3)) -eq 41 ] || fail "orders ok attempts: $ok_2 + $ok_3, want 41"
[ "$ok_2" -ge 18 ] && [ "$ok_3" -ge 18 ] || fail "round_robin spread: $ok_2 / $ok_3"
expect meshim_connections_total "service=\"orders\",endpoint=\"$(ep 4)\",result=\"refused\"" 3
expect meshim_connections_total "service=\"orders\",endpoint=\"$(ep 4)\",result=\"ok\"" 0
expect meshim_retries_total 'service="orders"' 3
expect meshim_ejections_total "service=\"orders\",endpoint=\"$(ep 4)\"" 1
expect meshim_endpoint_ejected "service=\"orders\",endpoint=\"$(ep 4)\"" 1
expect meshim_endpoint_ejected "service=\"orders\",endpoint=\"$(ep 2)\"" 0
expect meshim_active_connections 'service="orders"' 1
expect meshim_bytes_sent_total 'service="orders"' "$SENT"
expect meshim_bytes_received_total 'service="orders"' "$RECEIVED"
expect meshim_connect_seconds_count 'service="orders"' 41
expect meshim_connect_seconds_bucket 'service="orders",le="+Inf"' 41
expect meshim_connections_total "service=\"dead\",endpoint=\"$(ep 4)\",result=\"refused\"" 5
expect meshim_retries_total 'service="dead"' 0
expect meshim_connections_total 'service="limited",endpoint="",result="overflow"' 3
expect meshim_connections_total "service=\"limited\",endpoint=\"$(ep 2)\",result=\"ok\"" 1
expect meshim_active_connections 'service="limited"' 1
expect meshim_connections_total 'service="faulty",endpoint="",result="fault"' 4
expect meshim_connections_total "service=\"faulty\",endpoint=\"$(ep 2)\",result=\"ok\"" 0
expect meshim_connections_total "service=\"gone\",endpoint=\"$(ep 4)\",result=\"refused\"" 1
expect meshim_connections_total 'service="gone",endpoint="",result="no_endpoint"' 1
child_ok=$(( $(PID=$CHILD value meshim_connections_total "service=\"orders\",endpoint=\"$(ep 2)\",result=\"ok\"") + \
             $(PID=$CHILD value meshim_connections_total "service=\"orders\",endpoint=\"$(ep 3)\",result=\"ok\"") ))
[ "$child_ok" -eq 2 ] || fail "fork child: $child_ok ok connections in its own file, want 2"
ok "stats agree with the ground truth: orders 41 ok ($ok_2/$ok_3), 3 refused, 3 retries, 1 ejection, $SENT B sent, $RECEIVED B received; dead 5 refused; 3 overflow; 4 fault; 1 no_endpoint; fork child counted 2 in its own file"

promtool check metrics < "$TMP/prom.txt" > "$TMP/promtool.out" 2>&1 || fail "promtool: $(cat "$TMP/promtool.out")"
ok "promtool check metrics accepts the exposition"

# --- the table -----------------------------------------------------------
meshim stats --dir "$STATS" "$CLIENT" > "$TMP/table.txt" || fail "meshim stats PID"
grep -q "^python3 (pid $CLIENT)" "$TMP/table.txt" || fail "table header: $(cat "$TMP/table.txt")"
grep -Eq "^  orders +41 +3 +0 +0 +3 +1 +1 +$SENT +$RECEIVED " "$TMP/table.txt" ||
    fail "table row for orders: $(cat "$TMP/table.txt")"
grep -q "127.0.0.4:$port (ejected)" "$TMP/table.txt" || fail "table does not show the ejection"
ok "meshim stats PID: $(grep '^  orders' "$TMP/table.txt" | tr -s ' ')"

# --- the exporter ----------------------------------------------------------
eport=$(free_port)
# Directly, not through meshim(): $! must be the exporter's own pid.
env LD_PRELOAD="$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" exporter --listen "127.0.0.1:$eport" --dir "$STATS" \
    2> "$TMP/exporter.err" 7>&- &
EXPORTER=$!
PIDS+=($EXPORTER)
wait_port 127.0.0.1 "$eport"
# A client that connects and says nothing holds a slot, not the exporter.
exec 8<>"/dev/tcp/127.0.0.1/$eport"
curl -sf --max-time 5 "http://127.0.0.1:$eport/metrics" > "$TMP/scrape.txt" ||
    fail "scrape while a silent client is connected"
cp "$TMP/scrape.txt" "$TMP/prom.txt"
expect meshim_connections_total "service=\"orders\",endpoint=\"$(ep 4)\",result=\"refused\"" 3
expect meshim_bytes_received_total 'service="orders"' "$RECEIVED"
grep -q "pid=\"$CHILD\"" "$TMP/scrape.txt" || fail "exporter does not serve the fork child"
promtool check metrics < "$TMP/scrape.txt" > "$TMP/promtool.out" 2>&1 || fail "promtool (exporter): $(cat "$TMP/promtool.out")"
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
[ "$(status "http://127.0.0.1:$eport/nope")" = 404 ] || fail "unknown path is not 404"
[ "$(status -X POST "http://127.0.0.1:$eport/metrics")" = 405 ] || fail "POST is not 405"
[ "$(status -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$eport/metrics")" = 431 ] ||
    fail "a 9 KB request head is not refused with 431"
bad=$(printf 'HELLO\r\n\r\n' | timeout 5 python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $eport)); s.sendall(sys.stdin.buffer.read())
print(s.recv(100).split(b'\r\n')[0].decode())")
[ "$bad" = "HTTP/1.1 400 Bad Request" ] || fail "garbage request answered: $bad"
exec 8>&-
# 70 idle connections (more than its 64 slots) while a scraper comes in: the
# scraper is served, the idle ones lose their slots (review finding 10: they
# got every slot and scrapes got 503 for as long as they stayed).
code=$(timeout 30 python3 - "$eport" <<'PY'
import socket, sys, urllib.request
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(70)]
try:
    print(urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).status)
except Exception as e:
    print(e)
for s in idle:
    s.close()
PY
)
[ "$code" = 200 ] || fail "a scrape behind 70 idle connections got: $code"
ok "exporter: /metrics agrees, promtool accepts it, 404/405/431/400, a silent client does not block it, 70 idle ones do not keep a scraper out"

# --- a real Prometheus scrapes it ------------------------------------------
pport=$(free_port)
mkdir -p "$TMP/prometheus"
cat > "$TMP/prometheus/prometheus.yml" <<YML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: meshim
    static_configs: [ { targets: ["127.0.0.1:$eport"] } ]
YML
prometheus --config.file="$TMP/prometheus/prometheus.yml" --storage.tsdb.path="$TMP/prometheus/data" \
    --web.listen-address="127.0.0.1:$pport" > "$TMP/prometheus.log" 2>&1 7>&- &
PIDS+=($!)
wait_port 127.0.0.1 "$pport"
query='sum(meshim_connections_total{service="orders",result="ok"})'
answer=""
for i in $(seq 1 60); do
    answer=$(curl -s --max-time 2 -G "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$query" |
             python3 -c "import json,sys; r=json.load(sys.stdin)['data']['result']; print(r[0]['value'][1] if r else '')" 2>/dev/null)
    [ "$answer" = 43 ] && break
    sleep 0.5
done
[ "$answer" = 43 ] || fail "Prometheus answered '$answer' for $query (want 43: 41 + the child's 2); log: $(tail -5 "$TMP/prometheus.log")"
ok "a Prometheus server scraped the exporter: $query = $answer"

# --- the access log, once the client has exited ----------------------------
printf gg >&7
exec 7>&-
timeout 20 tail --pid="$CLIENT" -f /dev/null || fail "client did not exit"
wait "$CLIENT" || fail "client: $(cat "$TMP/client.out")"
python3 - "$TMP/access.log" "$CLIENT" "$CHILD" "$port" "$SENT" "$RECEIVED" <<'PY' || fail "access log"
import collections, json, sys
path, parent, child, port, sent, received = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
lines = [json.loads(l) for l in open(path)]        # every line is one JSON object
fields = ["ts", "pid", "direction", "service", "endpoint", "attempts", "result", "flags", "tls",
          "peer_identity", "connect_ms", "duration_ms", "bytes_sent", "bytes_received"]
for l in lines:
    # failed_attempts: only on a line whose connection had a failed attempt
    assert list(l) == fields + (["failed_attempts"] if "failed_attempts" in l else []), l
    assert l["direction"] == "outbound" and l["tls"] == "none", l
mine = [l for l in lines if l["pid"] == parent]
# Each failed attempt is listed, with why: orders' 3 retried connections
# each met the refusing 127.0.0.4 first, dead's 5 met it as their only one.
for l in mine:
    failed = l.get("failed_attempts", [])
    if (l["service"], l["attempts"]) in (("orders", 2), ("dead", 1), ("gone", 1)):
        assert failed == [{"endpoint": f"127.0.0.4:{port}", "error": "Connection refused"}], l
    else:
        assert failed == [], l
seen = collections.Counter((l["service"], l["result"], l["flags"], l["attempts"]) for l in mine)
want = collections.Counter({("dead", "refused", "UF", 1): 5, ("limited", "overflow", "UO", 0): 3,
                            ("limited", "ok", "-", 1): 1, ("faulty", "fault", "FI", 0): 4,
                            ("gone", "refused", "UF", 1): 1, ("gone", "no_endpoint", "UH", 0): 1,
                            ("orders", "ok", "-", 1): 38, ("orders", "ok", "-", 2): 3})
assert seen == want, f"got {sorted(seen.items())}\nwant {sorted(want.items())}"
orders = [l for l in mine if l["service"] == "orders"]
assert sum(l["bytes_sent"] for l in orders) == sent, "bytes_sent"
assert sum(l["bytes_received"] for l in orders) == received, "bytes_received"
assert all(l["endpoint"] in (f"127.0.0.2:{port}", f"127.0.0.3:{port}") for l in orders)
assert all(l["connect_ms"] is not None and l["duration_ms"] >= l["connect_ms"] for l in orders)
assert all(l["connect_ms"] is None and l["endpoint"] == "" for l in mine if l["result"] in ("overflow", "fault", "no_endpoint"))
kids = [l for l in lines if l["pid"] == child]
assert len(kids) == 2 and all(l["result"] == "ok" for l in kids), kids
print(f"{len(lines)} lines: {len(mine)} of the parent (41 orders, the one held open written at exit), {len(kids)} of the fork child")
PY
ok "access log agrees: $(python3 -c "print(sum(1 for _ in open('$TMP/access.log')))") JSON lines, flags UF/UO/FI/UH, bytes match"

n=$(grep -c "dead: connect failed after 1 attempt" "$TMP/meshim.log" || true)
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "5 identical warnings within a second wrote $n lines to log_file (want 1, or 2 across a second boundary)"
grep -q "^meshim\[$CLIENT\]: warn: " "$TMP/meshim.log" || fail "log_file lines do not start with meshim[PID]: warn:"
ok "log_file: 'meshim[PID]: warn: ...', 5 identical warnings written $n time(s)"

# --- dead processes ------------------------------------------------------
meshim stats --dir "$STATS" > "$TMP/after.txt"
grep -q "no live meshed process" "$TMP/after.txt" || fail "stats of exited processes still shown: $(cat "$TMP/after.txt")"
# The host's endpoint table (t_shared_state) and the TLS module a user's
# processes share (t_tls_module_shared) outlive them on purpose.
[ -z "$(ls "$STATS" | grep -vxE 'shared-endpoints.v1|tls-module-[0-9a-f]+\.so')" ] || fail "files of exited processes not cleaned up: $(ls "$STATS")"
ok "exited processes: ignored and their files removed"

# --- processes that died unseen --------------------------------------------
# A process killed with SIGKILL leaves its file (no exit ran); so do ones
# that crash or end by glibc's internal _exit. With no `meshim stats` to
# clean up, the next meshed process removes a few (at most 16) of the files
# whose pid does not exist, and nothing else.
DEAD=$TMP/stats3
mkdir -m 700 "$DEAD"
# Not through shimmed(): $! must be python3's own pid.
env MESHIM_STATS_DIR="$DEAD" MESHIM_SERVICES="orders=127.0.0.2:$port" LD_PRELOAD="$MESHIM_PRELOAD" python3 -c '
import socket, sys, time
socket.create_connection(("orders", int(sys.argv[1]))).close()
time.sleep(60)' "$port" &
victim=$!
PIDS+=($victim)
wait_until '[ -e "$DEAD/$victim.stats" ]' || fail "the victim made no stats file"
kill -KILL "$victim"; wait "$victim" 2> /dev/null
pid_max=$(cat /proc/sys/kernel/pid_max)
for k in 1 2 3 4 5; do : > "$DEAD/$((pid_max + k)).stats"; done   # no such pid, ever
: > "$DEAD/.$((pid_max + 6)).stats.x9Yz"      # one being made when its process died
: > "$DEAD/$$.stats"                          # a live process's (this shell's)
: > "$DEAD/notes.txt"
next() { MESHIM_STATS_DIR=$1 MESHIM_SERVICES="orders=127.0.0.2:$port" shimmed python3 -c '
import socket, sys
socket.create_connection(("orders", int(sys.argv[1]))).close()' "$port"; }
next "$DEAD" || fail "the next meshed process failed"
left=$(cd "$DEAD" && ls -A | grep -vx shared-endpoints.v1 | sort | tr '\n' ' ')
[ "$left" = "$$.stats notes.txt " ] || fail "after the next process the folder holds: $left (want $$.stats notes.txt)"
MANY=$TMP/stats4
mkdir -m 700 "$MANY"
for k in $(seq 1 20); do : > "$MANY/$((pid_max + k)).stats"; done
next "$MANY" || fail "the next meshed process failed"
n=$(ls -A "$MANY" | grep -c '\.stats$')
[ "$n" = 4 ] || fail "of 20 dead processes' files, $n remain (want 4: 16 removed per process)"
ok "files of processes that died unseen (SIGKILL'd, no such pid) removed by the next process, 16 at most; live and foreign names kept"

# --- the access log rotated under a running process ------------------------
# logrotate's way: the file renamed, a new one made at the path by the next
# line. A process keeps the file open between lines; after the rename its
# lines reach the new file within a second or so, and none is lost.
ROT=$TMP/rot.log
env MESHIM_ACCESS_LOG="$ROT" MESHIM_STATS_DIR=off MESHIM_SERVICES="orders=127.0.0.2:$port" \
    LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" "$TMP/rot.count" "$TMP/rot.stop" <<'PY' &
import os, socket, sys, time
port, count, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
n = 0
while not os.path.exists(stop) and n < 2000:
    s = socket.create_connection(("orders", port))
    s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    n += 1
    time.sleep(0.01)
open(count, "w").write(str(n))
PY
rotator=$!
PIDS+=($rotator)
wait_until '[ -s "$ROT" ]' || fail "no access-log line from the running process"
mv "$ROT" "$ROT.1"
WAIT_TENTHS=100 wait_until '[ -s "$ROT" ]' || fail "after the rename, no line reached the new file"
touch "$TMP/rot.stop"
wait "$rotator" || fail "the rotated process failed"
made=$(cat "$TMP/rot.count")
logged=$(cat "$ROT.1" "$ROT" | grep -c '"service":"orders"')
[ "$logged" = "$made" ] || fail "$made connections, $logged access-log lines across the rotation"
ok "access log renamed under a running process: the new file gets its lines, $logged of $made lines in the two"

# --- the engine's path: timeouts met by non-blocking connects ------------------
start_black_hole 127.0.0.5 "$port"
cat > "$TMP/hole.ini" <<INI
[meshim]
stats_dir = $TMP/stats2
access_log = $TMP/access2.log
[service:orders]
endpoints = 127.0.0.5:$port, 127.0.0.2:$port
lb = round_robin
connect_timeout = 200ms
eject_after = 1000
INI
MESHIM_CONFIG=$TMP/hole.ini shimmed python3 - "$port" "$ROOT/$BUILD/meshim" "$TMP/stats2" > "$TMP/hole.prom" <<'PY' ||
import asyncio, os, subprocess, sys
port, meshim, stats = int(sys.argv[1]), sys.argv[2], sys.argv[3]
async def main():
    for i in range(4):
        r, w = await asyncio.open_connection("orders", port)
        w.write(b"GET /who HTTP/1.0\r\n\r\n"); await w.drain(); await r.read()
        w.close(); await w.wait_closed()
asyncio.run(main())
env = dict(os.environ, LD_PRELOAD=os.environ.get("MESHIM_CMD_PRELOAD", ""))
print(subprocess.run([meshim, "stats", "--prometheus", "--dir", stats, str(os.getpid())],
                     capture_output=True, text=True, env=env, check=True).stdout)
PY
    fail "asyncio client through the black hole failed"
cp "$TMP/hole.prom" "$TMP/prom.txt"
CLIENT=$(grep -o 'pid="[0-9]*"' "$TMP/hole.prom" | head -1 | tr -dc 0-9)
expect meshim_connections_total "service=\"orders\",endpoint=\"$(ep 5)\",result=\"timeout\"" 2
expect meshim_connections_total "service=\"orders\",endpoint=\"$(ep 2)\",result=\"ok\"" 4
expect meshim_retries_total 'service="orders"' 2
expect meshim_connect_seconds_count 'service="orders"' 4
python3 - "$TMP/access2.log" "$(ep 5)" <<'PY' || fail "access log of the engine's path: $(cat "$TMP/access2.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 4, lines
retried = [l for l in lines if l["attempts"] == 2]
assert len(retried) == 2 and all(l["connect_ms"] >= 200 and l["result"] == "ok" for l in retried), lines
for l in retried:       # the black hole is listed, and why
    assert [f["endpoint"] for f in l["failed_attempts"]] == [sys.argv[2]], l
    assert "timed out" in l["failed_attempts"][0]["error"], l
print("retried:", retried[0]["failed_attempts"])
assert all(l["bytes_received"] > 0 for l in lines), lines
PY
ok "non-blocking connects through the engine: 2 timeouts, 2 retries, 4 ok, retried lines with connect_ms >= 200"
