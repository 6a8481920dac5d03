#!/usr/bin/env bash
# Files the shim writes, in folders other users can write (security review,
# findings 1 and 7). A meshed python3 client running as root, with "nobody"
# as the other local user:
#   - nobody plants the names the stats file used to be made under, in a
#     shared sticky folder, before the client counts anything: the client's
#     file is still its own (root, 0644, one link), nobody cannot write it,
#     and what nobody planted is left alone (the review had a root victim
#     map nobody's file, then segfault when nobody rewrote its offsets);
#   - a stats folder that nobody owns, a world-writable one that is not
#     sticky, and a symlink to a folder: no stats, one warning, the program
#     works;
#   - the access log is a FIFO nobody reads: close() returns, nothing
#     hangs; the access log is a symlink nobody planted: not followed;
#   - and files the shim reads: an INI, an endpoints file, a trust bundle
#     anyone may write, or nobody owns, are refused (python3 as the client).
# It runs with no other test beside it (tests/integration/run): it reads
# nobody's default folder, /tmp/meshim-65534, which t_privileges writes.
# lanes: alone
. "$(dirname "$0")/lib.sh"
unset MESHIM_STATS_DIR     # its INI files name the stats folders it checks

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to act as another user"; exit 0; }
as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}
chmod 0711 "$TMP"       # nobody may reach the shared folders below

port=$(free_port)
start_backend 2 "$port"
wait_port 127.0.0.2 "$port"

# The client: one request to orders once $TMP/go exists, then waits for
# $TMP/stop; prints its pid first and "done" after the request.
cat > "$TMP/client.py" <<'PY'
import os, socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
print(os.getpid(), flush=True)
deadline = time.time() + 60
while not os.path.exists(tmp + "/go") and time.time() < deadline:
    time.sleep(0.02)
s = socket.create_connection(("orders", port), timeout=5)
s.sendall(b"GET /who HTTP/1.0\r\n\r\n")
while s.recv(4096):
    pass
s.close()
print("done", flush=True)
while not os.path.exists(tmp + "/stop") and time.time() < deadline:
    time.sleep(0.02)
PY
client() {
    timeout 30 env LD_PRELOAD="$MESHIM_PRELOAD" python3 "$TMP/client.py" "$port" "$TMP"
}

# wait_line FILE TEXT: at most 20 s for TEXT to appear in FILE.
wait_line() {
    local i
    for i in $(seq 1 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "no '$2' in $1 after 20 s: $(cat "$1")"
}

mesh_ini() {
    cat > "$TMP/mesh.ini" <<INI
[meshim]
stats_dir = $1
access_log = ${2:-off}
[service:orders]
endpoints = 127.0.0.2:$port
INI
    export MESHIM_CONFIG=$TMP/mesh.ini
}

# --- 1. planted names in a shared sticky folder --------------------------
shared=$TMP/shared
mkdir -m 1777 "$shared"
mesh_ini "$shared"
rm -f "$TMP/go" "$TMP/stop"
client > "$TMP/c1.out" 2> "$TMP/c1.err" &
cpid=$!
PIDS+=($cpid)
wait_line "$TMP/c1.out" '^[0-9]'
vpid=$(head -1 "$TMP/c1.out")
as_nobody sh -c "umask 0; : > '$shared/.$vpid.stats.tmp'; : > '$shared/$vpid.stats'" ||
    fail "nobody could not plant files"
touch "$TMP/go"
wait_line "$TMP/c1.out" '^done'
[ "$(stat -c '%u %a %h' "$shared/$vpid.stats")" = "0 644 1" ] ||
    fail "the client's stats file is not its own: $(stat -c '%u %a %h' "$shared/$vpid.stats")"
[ "$(stat -c '%u %s' "$shared/.$vpid.stats.tmp")" = "65534 0" ] ||
    fail "the file nobody planted was taken: $(stat -c '%u %s' "$shared/.$vpid.stats.tmp")"
if as_nobody sh -c "echo x >> '$shared/$vpid.stats'" 2>/dev/null; then
    fail "nobody can write the client's stats file"
fi
meshim stats --dir "$shared" "$vpid" > "$TMP/stats.txt" 2>&1
grep -q '^  orders' "$TMP/stats.txt" || fail "meshim stats cannot read it: $(cat "$TMP/stats.txt")"
touch "$TMP/stop"
wait "$cpid" || fail "the client failed: $(cat "$TMP/c1.err")"
[ ! -e "$shared/$vpid.stats" ] || fail "the client's stats file outlived it"
ok "planted names in a shared sticky folder: the client made its own file (root 0644, one link), nobody cannot write it, the planted files are untouched"

# --- 2. folders the shim refuses -----------------------------------------
refuse() {
    local dir=$1 why=$2
    mesh_ini "$dir"
    rm -f "$TMP/go" "$TMP/stop"
    touch "$TMP/go" "$TMP/stop"
    client > "$TMP/c2.out" 2> "$TMP/c2.err" || fail "the client failed with stats_dir $dir: $(cat "$TMP/c2.err")"
    grep -q '^done' "$TMP/c2.out" || fail "no request with stats_dir $dir"
    grep -q "stats: not writing $dir/[0-9]*.stats: $why; this process keeps no stats" "$TMP/c2.err" ||
        fail "no warning '$why' for $dir: $(cat "$TMP/c2.err")"
    [ "$(grep -c 'stats: not writing' "$TMP/c2.err")" -eq 1 ] || fail "more than one warning for $dir"
    ok "stats_dir refused ($why): $(grep 'stats: not' "$TMP/c2.err" | sed 's/^meshim\[[0-9]*\]: //')"
}
mkdir -m 0777 "$TMP/nobodys"
chown 65534:65534 "$TMP/nobodys"
refuse "$TMP/nobodys" "owned by uid 65534, neither this user (0) nor root"
mkdir -m 0777 "$TMP/open"
chmod 0777 "$TMP/open"
refuse "$TMP/open" "anyone may write to it and it is not sticky"
mkdir -m 0700 "$TMP/real"
ln -s "$TMP/real" "$TMP/link"
refuse "$TMP/link" "not a folder (a symlink?)"
[ -z "$(ls -A "$TMP/real")" ] || fail "a stats file was made through the symlink"

# --- 3. the access log ---------------------------------------------------
mkfifo "$TMP/alog.fifo"
mesh_ini "$TMP/stats" "$TMP/alog.fifo"
rm -f "$TMP/go" "$TMP/stop"
touch "$TMP/go" "$TMP/stop"
client > "$TMP/c3.out" 2> "$TMP/c3.err"
rc=$?
[ $rc -eq 0 ] || fail "access log on a FIFO nobody reads: the client ended with $rc (124: it hung)"
grep -q '"service":"orders"' "$TMP/c3.err" ||
    fail "the access-log line did not go to stderr instead: $(cat "$TMP/c3.err")"
ok "access log on a FIFO nobody reads: close() returned, the line went to stderr"

echo "precious" > "$TMP/target"
ln -s "$TMP/target" "$TMP/alog.link"
mesh_ini "$TMP/stats" "$TMP/alog.link"
client > "$TMP/c4.out" 2> "$TMP/c4.err" || fail "the client failed: $(cat "$TMP/c4.err")"
[ "$(cat "$TMP/target")" = "precious" ] || fail "the access log followed a symlink: $(cat "$TMP/target")"
grep -q "access_log: cannot open $TMP/alog.link (a symbolic link, never followed: name the file itself, or stderr)" \
    "$TMP/c4.err" || fail "no warning naming the symlink: $(grep access_log "$TMP/c4.err")"
ok "access log on a planted symlink: not followed (the target is unchanged), and the warning says so"

# --- 4. the host's endpoint table (shared_state) -------------------------
# nobody plants the table in a shared sticky folder before root's client
# starts, writable by anyone: root's client must not map it (the stats
# file's planting attack, review finding 1), warns once and works.
planted=$TMP/planted
mkdir -m 1777 "$planted"
size=$(stat -c %s "$TMP/stats/shared-endpoints.v1") || fail "root's clients made no table in $TMP/stats"
as_nobody sh -c "umask 0; head -c $size /dev/zero > '$planted/shared-endpoints.v1'" || fail "nobody could not plant the table"
mesh_ini "$planted"
touch "$TMP/go" "$TMP/stop"
client > "$TMP/c5.out" 2> "$TMP/c5.err" || fail "the client failed beside a planted table: $(cat "$TMP/c5.err")"
grep -q '^done' "$TMP/c5.out" || fail "no request beside a planted table"
grep -q "shared state: not using $planted/shared-endpoints.v1: owned by uid 65534, not this user (0); this process keeps its endpoint state to itself" "$TMP/c5.err" ||
    fail "no warning for the planted table: $(cat "$TMP/c5.err")"
[ "$(grep -c 'shared state:' "$TMP/c5.err")" -eq 1 ] || fail "more than one shared-state warning: $(cat "$TMP/c5.err")"
cmp -s -n "$size" "$planted/shared-endpoints.v1" /dev/zero || fail "root's client wrote into nobody's planted table"
ok "a table nobody planted: refused ($(grep 'shared state:' "$TMP/c5.err" | sed 's/^meshim\[[0-9]*\]: warn: //')), left untouched"

# A symlink planted in its place is not followed.
planted2=$TMP/planted2
mkdir -m 1777 "$planted2"
echo "precious" > "$TMP/target2"
as_nobody ln -s "$TMP/target2" "$planted2/shared-endpoints.v1"
mesh_ini "$planted2"
client > "$TMP/c6.out" 2> "$TMP/c6.err" || fail "the client failed beside a planted symlink: $(cat "$TMP/c6.err")"
grep -q "shared state: not using $planted2/shared-endpoints.v1: a symlink" "$TMP/c6.err" || fail "no warning for the symlink: $(cat "$TMP/c6.err")"
[ "$(cat "$TMP/target2")" = "precious" ] || fail "the table followed a symlink"
ok "a table planted as a symlink: not followed"

# Two users do not share: each has its own table in its own folder, and an
# endpoint that nobody's processes eject is not skipped by root's.
cat > "$TMP/users.ini" <<INI
[service:users-$port]
endpoints = 127.0.0.2:$port, 127.0.0.9:$port
lb = round_robin
eject_after = 1
INI
chmod 0644 "$TMP/users.ini"
users_client() {
    "$@" env MESHIM_CONFIG="$TMP/users.ini" LD_PRELOAD="$MESHIM_PRELOAD" python3 -c "
import socket
for _ in range(4):
    socket.create_connection(('users-$port', $port), timeout=5).close()"
}
users_client as_nobody 2> "$TMP/c7.err" || fail "nobody's client failed: $(cat "$TMP/c7.err")"
nobody_dir=/tmp/meshim-65534
meshim stats --dir "$nobody_dir" > "$TMP/nobody.txt" 2>&1
grep -qE "^  users-$port 127\.0\.0\.9:$port +ejected" "$TMP/nobody.txt" ||
    fail "nobody's table does not have 127.0.0.9 ejected: $(cat "$TMP/nobody.txt")"
[ "$(stat -c '%U %a' "$nobody_dir/shared-endpoints.v1")" = "nobody 600" ] ||
    fail "nobody's table is not nobody's alone: $(stat -c '%U %a' "$nobody_dir/shared-endpoints.v1")"
MESHIM_STATS_DIR= users_client env 2> "$TMP/c8.err" || fail "root's client failed: $(cat "$TMP/c8.err")"
grep -q "127.0.0.9:$port" "$TMP/c8.err" || fail "root's client never tried 127.0.0.9 (it skipped what nobody's processes learned): $(cat "$TMP/c8.err")"
ok "two users: nobody's processes ejected 127.0.0.9 in $nobody_dir; root's client still tried it itself"

# Files the shim takes its orders and identity from: an INI, an endpoints
# file, a trust bundle that anyone may write, or that nobody owns, would let
# nobody steer root's connections (or add a CA and pass as any peer). Each
# is refused with one line, and nothing goes out in plaintext.
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" > /dev/null || fail "cannot make the test certificates"
fetch_who() {   # fetch_who INI: orders' /who under the shim (python3), stderr with it
    timeout 30 env LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$1" python3 -c '
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())
except Exception as e:
    print("python3:", e)
    sys.exit(7)' "http://orders:$port/who" 2>&1
}
printf '[service:orders]\nendpoints = 127.0.0.2:%s\n' "$port" > "$TMP/open.ini"
chmod 0666 "$TMP/open.ini"
out=$(fetch_who "$TMP/open.ini"); rc=$?
[ "$rc" -eq 78 ] && grep -q "error: $TMP/open.ini: not trusted: anyone may write to it (chmod o-w)" <<< "$out" ||
    fail "an INI anyone may write: rc=$rc $out"
chmod 0644 "$TMP/open.ini"; chown 65534 "$TMP/open.ini"
out=$(fetch_who "$TMP/open.ini"); rc=$?
[ "$rc" -eq 78 ] && grep -q "error: $TMP/open.ini: not trusted: owned by uid 65534, neither this user (0) nor root" <<< "$out" ||
    fail "an INI nobody owns: rc=$rc $out"
chown 0 "$TMP/open.ini"
[ "$(fetch_who "$TMP/open.ini")" = "backend-2" ] || fail "the same INI, root's and closed: $(fetch_who "$TMP/open.ini")"
printf '127.0.0.2:%s\n' "$port" > "$TMP/open.endpoints"; chmod 0666 "$TMP/open.endpoints"
printf '[service:orders]\nendpoints_file = %s\n' "$TMP/open.endpoints" > "$TMP/file.ini"
out=$(fetch_who "$TMP/file.ini"); rc=$?
[ "$rc" -ne 0 ] && grep -q "error: $TMP/open.endpoints: endpoints_file: not trusted: anyone may write to it (chmod o-w); orders keeps its last good endpoints" <<< "$out" ||
    fail "an endpoints file anyone may write: rc=$rc $out"
ok "an INI anyone may write, or another user owns: the program stops with status 78 and says so; an endpoints file anyone may write is not read, with one line"

tport=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$tport]" "tls = strict"
shimmed_server() {
    env LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/server.ini" python3 -m http.server -b 127.0.0.3 "$tport" \
        > "$TMP/tserver.log" 2>&1
}
shimmed_server & PIDS+=($!)
wait_port 127.0.0.3 "$tport"
cp "$C/ca.pem" "$TMP/open-ca.pem"; chmod 0666 "$TMP/open-ca.pem"
printf '[tls]\ncert = %s\nkey = %s\nca = %s\n[service:orders]\nendpoints = 127.0.0.3:%s\ntls = mtls\nretries = 0\n' \
    "$C/web.pem" "$C/web.key" "$TMP/open-ca.pem" "$tport" > "$TMP/open-ca.ini"
out=$(fetch_who "$TMP/open-ca.ini"); rc=$?
[ "$rc" -ne 0 ] && grep -q "error: \[tls\] ca $TMP/open-ca.pem: anyone may write to it (chmod o-w); connections that need mTLS fail" <<< "$out" ||
    fail "a trust bundle anyone may write: rc=$rc $out"
grep -q "GET /who" "$TMP/tserver.log" && fail "the server got a request: $(cat "$TMP/tserver.log")"
chmod 0644 "$TMP/open-ca.pem"
out=$(fetch_who "$TMP/open-ca.ini"); grep -q "HTTP Error 404" <<< "$out" ||
    fail "the same bundle, closed: $out $(cat "$TMP/tserver.log")"
ok "a trust bundle anyone may write: mTLS connects fail with one line, the server gets nothing; closed, it works"
