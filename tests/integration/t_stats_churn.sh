#!/usr/bin/env bash
# A long-lived client of a service whose endpoints keep changing (pods
# replaced at every deploy) keeps counting its endpoints of today. The
# stats file has rows for 2,048 endpoints; before, they went to the first
# 2,048 the process ever saw, and once those had come and gone the
# endpoints in use had no row at all: `meshim stats` and the exporter
# showed the dead and not the living (observe/metrics.c, reclaim_endpoints).
#
# In a network namespace of the test's own (a listener on the wildcard
# address there answers every 127.x.y.z): a meshed python3 client's
# endpoints file is rewritten 23 times with 100 new addresses each (2,300
# in all), and the client connects until it has reached every address of
# each version. Then, while it is still alive: every endpoint of the last
# version has its row and its series; an endpoint of the first version has
# neither; the service's total is every connection the client made.
. "$(dirname "$0")/lib.sh"

unshare -n true 2> /dev/null || { echo "skip: no network namespace (unshare -n)"; exit 77; }
port=$(free_port)       # the namespace's loopback is empty: any port is free there
versions=23
cat > "$TMP/client.ini" <<INI
[meshim]
stats_dir = $TMP/stats
[tls]
reload_interval = 100ms
[service:churn]
endpoints_file = $TMP/eps
INI
unset MESHIM_STATS_DIR      # the INI names the folder
mkdir -m 700 "$TMP/stats"
: > "$TMP/eps"

env TMP="$TMP" PORT="$port" PRELOAD="$MESHIM_PRELOAD" CMD_PRELOAD="$MESHIM_CMD_PRELOAD" \
    CMD="$MESHIM_CMD" VERSIONS="$versions" unshare -n bash -c '
    ip link set lo up || exit 1
    python3 -c "
import socket
ls = socket.socket()
ls.bind((\"0.0.0.0\", $PORT))     # this namespace has lo only
ls.listen(128)
print(\"listening\", flush=True)
while True:
    c = ls.accept()[0]
    c.recv(1)
    c.sendall(c.getsockname()[0].encode())
    c.close()
" > "$TMP/server.log" 2>&1 &
    server=$!
    trap "kill $server" EXIT
    for _ in $(seq 200); do grep -q listening "$TMP/server.log" && break; sleep 0.05; done
    MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD=$PRELOAD timeout 120 python3 - > "$TMP/client.out" 2> "$TMP/client.err" <<"PY"
import os, socket, subprocess, time
port, tmp, versions = int(os.environ["PORT"]), os.environ["TMP"], int(os.environ["VERSIONS"])
def address(n):                 # 127.10.0.1, 127.10.0.2, ...
    n += 1
    return "127.10.%d.%d" % (n // 250, n % 250 + 1)
def write(v):
    with open(tmp + "/eps.tmp", "w") as f:
        for i in range(100):
            f.write("%s:%d\n" % (address(v * 100 + i), port))
    os.rename(tmp + "/eps.tmp", tmp + "/eps")
total = 0
for v in range(versions):
    write(v)
    want = {address(v * 100 + i) for i in range(100)}
    seen, deadline = set(), time.time() + 20
    while not want <= seen and time.time() < deadline:
        try:
            s = socket.create_connection(("churn", port), timeout=5)
        except OSError:         # the first version is not read yet
            time.sleep(0.05)
            continue
        s.sendall(b"?")
        seen.add(s.recv(64).decode())
        s.close()
        total += 1
    assert want <= seen, "version %d: endpoints never reached: %s" % (v, sorted(want - seen)[:5])
env = dict(os.environ, LD_PRELOAD=os.environ["CMD_PRELOAD"])
stats = [os.environ["CMD"], "stats", "--dir", tmp + "/stats", str(os.getpid())]
open(tmp + "/table", "w").write(subprocess.run(stats, env=env, capture_output=True, text=True).stdout)
open(tmp + "/prom", "w").write(subprocess.run(stats[:2] + ["--prometheus"] + stats[2:], env=env,
                                              capture_output=True, text=True).stdout)
print("connections", total)
print("last", " ".join(sorted(address((versions - 1) * 100 + i) for i in range(100))))
print("first", address(0))
PY
' || fail "in the namespace: $(tail -n 5 "$TMP/client.err" "$TMP/server.log")"

total=$(awk '$1 == "connections" { print $2 }' "$TMP/client.out")
[ -n "$total" ] && [ "$total" -ge 2300 ] || fail "the client did not finish: $(cat "$TMP/client.out" "$TMP/client.err")"
ok "$total connections to 2,300 endpoints in $versions versions of the endpoints file"

missing=0
for a in $(awk '$1 == "last" { $1 = ""; print }' "$TMP/client.out"); do
    grep -Eq "^ +$a:$port +[1-9]" "$TMP/table" || missing=$((missing + 1))
    grep -q "endpoint=\"$a:$port\",result=\"ok\"} [1-9]" "$TMP/prom" || missing=$((missing + 1))
done
[ "$missing" -eq 0 ] ||
    fail "$missing rows or series missing for the 100 endpoints in use: $(grep -c '127\.10\.' "$TMP/table") rows in meshim stats; $(head -n 5 "$TMP/table")"
ok "each of the 100 endpoints in use has its row in meshim stats and its series"

first=$(awk '$1 == "first" { print $2 }' "$TMP/client.out")
! grep -q "$first:$port" "$TMP/table" "$TMP/prom" || fail "$first, gone since the first version, is still listed"
rows=$(grep -c '127\.10\.' "$TMP/table")
[ "$rows" -le 2048 ] || fail "$rows endpoint rows"
ok "endpoints gone since gave their rows back ($rows rows left)"

service_ok=$(awk '$1 == "churn" { print $2 }' "$TMP/table")
[ "$service_ok" = "$total" ] || fail "the service's ok total says $service_ok, the client made $total: $(head -n 3 "$TMP/table")"
ok "the service's total keeps the counts of the endpoints gone ($service_ok)"
