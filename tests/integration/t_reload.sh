#!/usr/bin/env bash
# Live changes (SPEC §3.4): one long-running python3 client loop calls
# "orders" by name every 20 ms while the test rewrites the endpoints file
# and then the INI file itself ([tls] reload_interval = 300ms):
#   endpoints file: add an endpoint, remove one, a bad line (reported with
#   file and line, the last good set stays);
#   INI file: orders gets a static endpoint and lb = random, a new service
#   "billing" appears; then a broken file (one error line, the running
#   config stays).
# No request fails, each change is in use within the reload interval (plus
# the client's own step), and the VIP of orders never changes. Then a
# relative MESHIM_CONFIG: reloaded after a chdir, read by a child after cd.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_backends "$port"
interval=0.3
eps=$TMP/orders.endpoints
# Writers of watched files replace them whole (rename), as agents do.
put() {
    cat > "$1.tmp" && mv "$1.tmp" "$1"
}
echo "127.0.0.2:$port" | put "$eps"
ini() {
    put "$TMP/mesh.ini" <<INI
[meshim]
log_level = info
[tls]
reload_interval = 300ms
[service:orders]
endpoints_file = $eps
lb = $1
$2
INI
}
ini round_robin ""
export MESHIM_CONFIG=$TMP/mesh.ini

shimmed python3 - "$port" "$TMP" > "$TMP/loop.out" 2>"$TMP/loop.err" <<'PY' &
import os, socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
def get(name):
    s = socket.create_connection((name, port), timeout=5)
    s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].strip().decode()
print("vip", socket.gethostbyname("orders"), flush=True)
failures = 0
deadline = time.time() + 120
while not os.path.exists(tmp + "/stop") and time.time() < deadline:
    for name in ("orders", "billing") if os.path.exists(tmp + "/billing") else ("orders",):
        try:
            print("%.3f %s %s" % (time.time(), name, get(name)), flush=True)
        except OSError as e:
            failures += 1
            print("%.3f %s FAILED %s" % (time.time(), name, e), flush=True)
    time.sleep(0.02)
print("vip", socket.gethostbyname("orders"), flush=True)
print("failures", failures, flush=True)
PY
loop=$!
PIDS+=($loop)

# settle SINCE NAME BACKENDS...: waits (at most 5 s) until, after time
# SINCE, the answers for NAME come only from BACKENDS (each of them seen) for
# 20 requests in a row; prints how long after SINCE that started.
settle() {
    local since=$1 name=$2
    shift 2
    local want="$*" i out
    for i in $(seq 1 50); do
        out=$(python3 - "$TMP/loop.out" "$since" "$name" "$want" <<'PY'
import sys
path, since, name, want = sys.argv[1], float(sys.argv[2]), sys.argv[3], set(sys.argv[4].split())
rows = [l.split() for l in open(path) if l[0].isdigit()]
rows = [(float(r[0]), r[2]) for r in rows if r[1] == name and float(r[0]) >= since]
start = None
for k, (t, who) in enumerate(rows):
    if who not in want:
        start = None
    elif start is None:
        start = k
if start is not None and len(rows) - start >= 20 and {w for _, w in rows[start:]} == want:
    # in use from when the last unwanted answer is past and every wanted
    # endpoint has answered
    first = {}
    for t, who in rows[start:]:
        first.setdefault(who, t)
    print("%.2f" % (max([rows[start][0]] + list(first.values())) - since))
PY
)
        [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 0.1
    done
    fail "$name never settled on $want after $since: $(tail -5 "$TMP/loop.out"; tail -3 "$TMP/loop.err")"
}
now() {
    python3 -c 'import time; print("%.3f" % time.time())'
}
# A change is in use within the reload interval, plus one request (20 ms
# sleep and the request itself) and this machine's noise.
in_time() {
    python3 -c "import sys; sys.exit(0 if float('$1') <= $interval + 0.25 else 1)" ||
        fail "$2: in use only after $1 s (reload_interval ${interval}s)"
}

t=$(now)
took=$(settle "$t" orders backend-2)
ok "start: orders from the endpoints file (backend-2)"

t=$(now)
printf '# written by the agent\n127.0.0.2:%s\n127.0.0.3:%s\n' "$port" "$port" | put "$eps"
took=$(settle "$t" orders backend-2 backend-3)
in_time "$took" "endpoint added"
ok "endpoints file: endpoint added, in use after ${took}s"

t=$(now)
echo "127.0.0.3:$port" | put "$eps"
took=$(settle "$t" orders backend-3)
in_time "$took" "endpoint removed"
ok "endpoints file: endpoint removed, gone after ${took}s"

printf '127.0.0.3:%s\norders-4.local:%s\n' "$port" "$port" | put "$eps"
for i in $(seq 1 30); do grep -q "orders.endpoints:2: endpoints_file" "$TMP/loop.err" && break; sleep 0.1; done
line=$(grep "orders.endpoints:2: endpoints_file" "$TMP/loop.err") ||
    fail "no error for the bad line: $(cat "$TMP/loop.err")"
[ "$(echo "$line" | wc -l)" -eq 1 ] || fail "the bad file was reported more than once: $line"
t=$(now)
took=$(settle "$t" orders backend-3)
ok "endpoints file with a bad line: '$line'; the last good set stays"
out=$(meshim check -c "$TMP/mesh.ini" 2>&1)
rc=$?
[ $rc -eq 78 ] && echo "$out" | grep -q "orders.endpoints:2: endpoints_file: not IP" ||
    fail "meshim check on the bad endpoints file: rc=$rc $out"
ok "meshim check: 78 and the same message for the bad endpoints file"

t=$(now)
ini random "endpoints = 127.0.0.4:$port
[service:billing]
endpoints = 127.0.0.2:$port"
took=$(settle "$t" orders backend-3 backend-4)
in_time "$took" "INI reload"
touch "$TMP/billing"
t2=$(now)
settle "$t2" billing backend-2 > /dev/null
ok "INI file rewritten: orders = its file + a static endpoint after ${took}s, new service billing answers"

# lb = random: over 40 picks between two endpoints, round robin never
# repeats one; random does (all alternating: 2^-39). The picks counted are
# those made from 1 s after the rewrite: wait until the loop has made 40
# of them (at most 60 s: the loop makes one every 20 ms plus a request).
picks() {
    python3 - "$TMP/loop.out" "$t" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
seq = [r[2] for r in rows if r[1] == "orders" and float(r[0]) > float(sys.argv[2]) + 1][:40]
print(len(seq), "repeats" if any(a == b for a, b in zip(seq, seq[1:])) else "alternates")
PY
}
for i in $(seq 1 600); do
    seen=$(picks)
    [ "${seen%% *}" -ge 40 ] && break
    sleep 0.1
done
[ "${seen%% *}" -ge 40 ] || fail "the loop made ${seen%% *} picks of orders in 60 s after the rewrite"
[ "${seen#* }" = repeats ] || fail "lb did not change to random: 40 picks, every one alternating"
ok "lb changed to random for new connections"

errors_before=$(grep -c "error:" "$TMP/loop.err" || true)
ini random "endpoints = 127.0.0.4:$port
retries = two
[service:billing]
endpoints = 127.0.0.2:$port"
for i in $(seq 1 30); do grep -q "retries: not a number" "$TMP/loop.err" && break; sleep 0.1; done
sleep 1        # three more checks of the file: it must not be reported again
errs=$(grep "error:" "$TMP/loop.err" | tail -n +$((errors_before + 1)))
[ "$(echo "$errs" | grep -c .)" -eq 1 ] && echo "$errs" | grep -q "mesh.ini:9: retries: not a number: \"two\" (config not reloaded: the running one stays)" ||
    fail "broken INI: want one error line, got: $errs"
t=$(now)
settle "$t" orders backend-3 backend-4 > /dev/null
settle "$t" billing backend-2 > /dev/null
ok "broken INI file: one error line ($errs), the running config stays"

touch "$TMP/stop"
wait "$loop" || fail "client loop: $(tail -3 "$TMP/loop.err")"
grep -qx "failures 0" "$TMP/loop.out" || fail "requests failed: $(grep FAILED "$TMP/loop.out" | head -3)"
[ "$(grep -c '^vip' "$TMP/loop.out")" -eq 2 ] && [ "$(grep '^vip' "$TMP/loop.out" | sort -u | wc -l)" -eq 1 ] ||
    fail "the VIP of orders changed: $(grep '^vip' "$TMP/loop.out")"
ok "$(grep -c ' orders \| billing ' "$TMP/loop.out") requests over every change, none failed; the VIP of orders stayed $(grep -m1 '^vip' "$TMP/loop.out" | cut -d' ' -f2)"

# A relative MESHIM_CONFIG (`meshim run -c` takes one too) means the folder
# the program started in. A program that then changes directory (a daemon's
# chdir("/")) still reloads that file (before: "mesh.ini: gone; the running
# config stays"), and a child started from elsewhere (a script's cd before
# exec) reads it too (before: "cannot read", exit 78).
rel=$TMP/relative
mkdir -p "$rel"
printf '[tls]\nreload_interval = 300ms\n[service:orders]\nendpoints = 127.0.0.2:%s\n' "$port" | put "$rel/mesh.ini"
out=$(cd "$rel" && MESHIM_CONFIG=mesh.ini shimmed python3 - "$port" "$rel/mesh.ini" 2> "$TMP/rel.err" <<'PY'
import os, socket, sys, time
port, ini = int(sys.argv[1]), sys.argv[2]
def peer():
    with socket.create_connection(("orders", port), timeout=5) as s:
        return s.getpeername()[0]
assert peer() == "127.0.0.2", peer()
os.chdir("/")
with open(ini + ".tmp", "w") as f:
    f.write("[tls]\nreload_interval = 300ms\n[service:orders]\nendpoints = 127.0.0.3:%d\n" % port)
os.rename(ini + ".tmp", ini)
deadline = time.time() + 10
while peer() != "127.0.0.3":
    assert time.time() < deadline, "the rewritten file was not loaded after a chdir"
    time.sleep(0.05)
print("reloaded")
PY
) || fail "relative MESHIM_CONFIG, reload after chdir: $out $(grep -v ' info: ' "$TMP/rel.err" | tail -3)"
child=$(cd "$rel" && MESHIM_CONFIG=mesh.ini shimmed sh -c 'cd / && exec python3 -c "
import socket, sys
with socket.create_connection((\"orders\", int(sys.argv[1])), timeout=5) as s:
    print(s.getpeername()[0])" '"$port" 2> "$TMP/rel-child.err") ||
    fail "relative MESHIM_CONFIG, a child started after cd /: $(grep -v ' info: ' "$TMP/rel-child.err" | tail -2)"
[ "$child" = 127.0.0.3 ] || fail "a child started after cd / reached $child, not the file's endpoint"
ok "relative MESHIM_CONFIG: reloaded after the program's chdir, and read by a child started after cd /"
