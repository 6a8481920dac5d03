#!/usr/bin/env bash
# A root process under mTLS reads its identity just before it may lose
# the files, not at start (hook/process.c, process_before_privileges).
#
#   1. Root python3 with mTLS configured and no connection made: OpenSSL
#      and the identity are not loaded (before, every root process of an
#      image, each shell command, loaded them at start: 10 ms and 5 MB),
#      not even by setgid(getgid()) and setuid(getuid()), which change
#      nothing (programs drop set-uid bits so at start).
#   2. Root python3 drops to nobody (setgroups, setgid, setuid), then
#      connects over mTLS with a key only root may read: served.
#   3. The same after a chroot into an empty folder, then the drop.
#   4. A fork child drops to nobody by its ids alone (setresgid,
#      setresuid) and connects (nginx's workers drop, and t_mtls runs
#      them), while its parent, root, never loaded anything.
#   5. subprocess.run(user=nobody) of such a process: the fork child drops
#      its privileges, then execs `id -u`.
#   6. nginx started as root, its workers as nobody, behind a strict port,
#      with access_log and log_file in a folder only root may write to:
#      the workers' lines (a served client's, a refused plaintext one's)
#      reach both files. Before, a worker could not open them after its
#      drop and its lines went to nginx's error log, each process with a
#      "cannot open ... Permission denied" line.
#   7. The same nginx, one worker, with the default stats folders: root's
#      `meshim stats` and `meshim exporter` show the worker, whose
#      counters are in nobody's folder (/tmp/meshim-65534). Before, they
#      read /tmp/meshim-0 only: "no live meshed process has stats".
# 2-4 fail without the hooks (Permission denied on the key); 1 fails with
# the load at start; 5 is a fork child that loads just before its drop and
# then execs, as supervisors and cron do; 6 fails without the logs opened
# before the drop, 7 without root's `meshim stats` and exporter reading
# every user's default folder.
# It runs with no other test beside it (tests/integration/run): 7 reads
# the default folders, which are every test's that runs as nobody.
# lanes: alone
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

[ "$(id -u)" = 0 ] || { echo "skip: needs root (drops privileges)"; exit 77; }
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
chmod 600 "$C/web.key"
[ "$(stat -c %a "$C/web.key")" = 600 ] || fail "the client key is not root-only"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" start_backend 2 "$port"
wait_port 127.0.0.2 "$port"
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls"
mkdir -m 755 "$TMP/empty"
chmod o+x "$TMP"

# Runs python3 CODE as root under the client's config ($TMP/client.ini, or
# INI); prints what it prints. get(host, port, path) is a body over a
# connection of its own; who() is orders' answer.
client() {
    MESHIM_CONFIG=${2:-$TMP/client.ini} MESHIM_STATS_DIR=off LD_PRELOAD="$MESHIM_PRELOAD" \
        python3 -c "
import encodings.idna, os, socket, subprocess, sys  # all before a drop: /root may be out of reach
def module_mapped():
    return any('meshim-tls' in l or '/tls-module-' in l for l in open('/proc/self/maps'))
def drop():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
def get(host, port, path='/'):
    s = socket.create_connection((host, port), timeout=20)
    s.sendall(b'GET ' + path.encode() + b' HTTP/1.0\r\n\r\n')
    got = b''
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
    return got.split(b'\r\n\r\n', 1)[-1].decode().strip()
def who():
    return get('orders', $port, '/who')
$1" 2> "$TMP/client.err"
}

out=$(client 'print(module_mapped(), end=" ")
os.setgid(os.getgid()); os.setuid(os.getuid()); os.setresuid(-1, 0, -1)
print(module_mapped(), os.getuid())') || fail "root python3, no connection: $(cat "$TMP/client.err")"
[ "$out" = "False False 0" ] ||
    fail "root python3 with mTLS configured, no connection, set*id calls that change nothing: the TLS module loaded: $out"
ok "a root process with mTLS configured that makes no connection, nor changes its ids, loads neither OpenSSL nor the identity"

out=$(client 'drop(); print(os.getuid(), module_mapped(), who())') ||
    fail "root python3 dropped to nobody, then mTLS: $(cat "$TMP/client.err")"
[ "$out" = "65534 True backend-2" ] ||
    fail "root python3 dropped to nobody, then mTLS with a root-only key: $out; $(tail -3 "$TMP/client.err")"
ok "root python3 dropped to nobody (setgroups, setgid, setuid), then mTLS with a root-only key: served"

out=$(client 'os.chroot("'"$TMP/empty"'"); os.chdir("/"); drop(); print(os.listdir("/"), who())') ||
    fail "chroot, drop, then mTLS: $(cat "$TMP/client.err")"
[ "$out" = "[] backend-2" ] || fail "chroot into an empty folder, drop, then mTLS: $out; $(tail -3 "$TMP/client.err")"
ok "chroot into an empty folder, then the drop, then mTLS: served"

out=$(client '
pid = os.fork()
if pid == 0:
    try:
        os.setresgid(65534, 65534, 65534)   # the ids alone, no setgroups
        os.setresuid(65534, 65534, 65534)
        print(os.getuid(), who(), flush=True)
    finally:
        os._exit(0)
os.waitpid(pid, 0)
print("parent", module_mapped())') || fail "a fork child dropped to nobody: $(cat "$TMP/client.err")"
[ "$out" = "65534 backend-2
parent False" ] || fail "a fork child of root dropped to nobody, then mTLS: $out; $(tail -3 "$TMP/client.err")"
ok "a fork child of a root process drops to nobody and connects over mTLS; the parent never loaded OpenSSL"

out=$(client 'print(subprocess.run(["id", "-u"], user=65534, group=65534, extra_groups=[], capture_output=True, text=True, timeout=20).stdout.strip(), who())') ||
    fail "subprocess.run(user=nobody): $(cat "$TMP/client.err")"
[ "$out" = "65534 backend-2" ] || fail "subprocess.run(user=nobody) under mTLS: $out; $(tail -3 "$TMP/client.err")"
ok "subprocess.run(user=nobody) of a root process under mTLS: the child dropped and ran; the parent's own mTLS served"

# gets SERVICE PORT N [plain]: N requests to SERVICE (127.0.0.1:PORT) by
# name over mTLS, web's identity, each body printed; with "plain", then one
# in plaintext to the port, the length of its answer printed (0: refused).
gets() {
    tls_ini "$TMP/$1-client.ini" web "[service:$1]" "endpoints = 127.0.0.1:$2" "tls = mtls"
    client "
for _ in range($3):
    print(get('$1', $2))
if '${4:-}' == 'plain':
    p = socket.create_connection(('127.0.0.1', $2), timeout=20)
    p.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
    print(len(p.recv(4096)))" "$TMP/$1-client.ini"
}

# 6. nginx as root, workers as nobody, the logs in a root-only folder.
nport=$(free_port)
mkdir -m 755 "$TMP/logs"
{ printf '[meshim]\nlog_level = info\naccess_log = %s\nlog_file = %s\n' "$TMP/logs/access.log" "$TMP/logs/meshim.log"
  printf '[tls]\ncert = %s\nkey = %s\nca = %s\n[inbound:%s]\ntls = strict\n' "$C/orders.pem" "$C/orders.key" "$C/ca.pem" "$nport"
} > "$TMP/nginx.ini"
NGINX_WORKERS=2 start_nginx logged "server { listen 127.0.0.1:$nport; location / { return 200 'logged\\n'; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/nginx.ini"
master=${PIDS[-1]}
wait_port 127.0.0.1 "$nport"
out=$(gets logged "$nport" 2 plain) || fail "a client of the logging nginx: $(cat "$TMP/client.err")"
[ "$out" = "logged
logged
0" ] || fail "nginx with its workers as nobody behind a strict port: $out; $(tail -3 "$TMP/client.err")"
wait_until "grep -q 'refused' '$TMP/logs/meshim.log' 2> /dev/null" ||
    fail "the refused client's line is not in log_file: $(cat "$TMP/logs/meshim.log" "$TMP/logged/error.log" "$TMP/logged/stderr" 2> /dev/null | tail -5)"
wait_until "[ \$(grep -c '\"direction\":\"inbound\".*\"result\":\"ok\"' '$TMP/logs/access.log' 2> /dev/null) -ge 2 ]" ||
    fail "the workers' access-log lines are not in access_log: $(cat "$TMP/logs/access.log" "$TMP/logged/error.log" "$TMP/logged/stderr" 2> /dev/null | tail -5)"
pids=$(sed -n 's/.*"pid":\([0-9]*\).*"direction":"inbound".*"result":"ok".*/\1/p' "$TMP/logs/access.log" | sort -u)
for pid in $pids; do
    [ "$pid" != "$master" ] && [ "$(stat -c %u /proc/"$pid")" = 65534 ] ||
        fail "an access-log line from pid $pid, not a worker running as nobody (master $master)"
done
! grep -h "cannot open" "$TMP/logged/error.log" "$TMP/logged/stderr" "$TMP/logs/meshim.log" 2> /dev/null ||
    fail "a worker could not open a log"
ok "nginx's workers as nobody write to access_log and log_file in a folder only root may write to (opened before their drop)"

# 7. Root's `meshim stats` and a worker's counters in nobody's folder.
sport=$(free_port)
tls_ini "$TMP/stats-nginx.ini" orders "[inbound:$sport]" "tls = strict"
NGINX_WORKERS=1 start_nginx counted "server { listen 127.0.0.1:$sport; location / { return 200 'counted\\n'; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/stats-nginx.ini" MESHIM_STATS_DIR=
master=${PIDS[-1]}
wait_port 127.0.0.1 "$sport"
# The listener is the master's: its worker may still be starting.
worker_as_nobody() {
    worker=$(cat /proc/"$master"/task/*/children 2> /dev/null | tr ' ' '\n' | grep . | head -n 1)
    [ -n "$worker" ] && [ "$(stat -c %u /proc/"$worker" 2> /dev/null)" = 65534 ]
}
wait_until worker_as_nobody || fail "no nginx worker running as nobody (master $master)"
out=$(gets counted "$sport" 3) || fail "a client of the counted nginx: $(cat "$TMP/client.err")"
[ "$out" = "counted
counted
counted" ] || fail "nginx behind a strict port, default stats folders: $out"
wait_until "env -u MESHIM_STATS_DIR -u MESHIM_CONFIG LD_PRELOAD='$MESHIM_CMD_PRELOAD' '$MESHIM_CMD' stats $worker 2> /dev/null | grep -q 'inbound :$sport  ok 3'" ||
    fail "root's meshim stats does not show the worker (pid $worker, as nobody): $(env -u MESHIM_STATS_DIR -u MESHIM_CONFIG LD_PRELOAD="$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" stats "$worker" 2>&1 | head -5)"
eport=$(free_port)
# Directly, not through meshim(): $! must be the exporter's own pid.
env -u MESHIM_STATS_DIR -u MESHIM_CONFIG LD_PRELOAD="$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" exporter \
    --listen "127.0.0.1:$eport" 2> "$TMP/exporter.err" &
PIDS+=($!)
wait_port 127.0.0.1 "$eport" || fail "the exporter did not listen: $(cat "$TMP/exporter.err")"
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$eport/metrics', timeout=10).read().decode())" \
    > "$TMP/scrape.txt" || fail "no scrape from the exporter: $(cat "$TMP/exporter.err")"
grep -q "pid=\"$worker\"" "$TMP/scrape.txt" ||
    fail "root's exporter does not serve the worker's counters (pid $worker): $(head -3 "$TMP/scrape.txt")"
ok "root's meshim stats and exporter show an nginx worker running as nobody, its counters in that user's default folder"
