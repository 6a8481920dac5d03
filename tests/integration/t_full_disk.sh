# The stats folder on a full file system (a small /tmp, a full disk). The
# stats file is sparse and written through a map: a page first written
# there with no block left raised SIGBUS in the program (python3 died with
# "Bus error" on its first connect). Every range is now allocated before
# it is written: a full folder costs the stats, never the program.
#   - no room at all: the host table and the stats file are not made, one
#     line each, the requests succeed;
#   - room for the file's first page only: the slots that do not fit are
#     not counted, one line, the requests succeed;
#   - the access log and log_file there: one line when access-log lines
#     start to be lost, one when they go in again;
#   - room enough: the files keep the size their readers check;
#   - an older build's table (sparse) on a full folder: refused, one line.
# The file systems are tmpfs mounts in a mount namespace of the test's own
# (unshare -m): they go with it.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] && unshare -m true 2> /dev/null || { echo "skip: needs root and unshare -m"; exit 77; }

port=$(free_port)
start_backends "$port"
cat > "$TMP/get.py" <<'PY'
import sys, urllib.request
for i in range(3):
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())
PY
# full FREE_PAGES INI: the client under the shim, its stats folder on a 64 KiB
# tmpfs with FREE_PAGES pages left.
full() {
    unshare -m sh -c '
        mount -t tmpfs -o size=64k,mode=0700 tmpfs "$1" && mkdir "$1/stats" &&
        dd if=/dev/zero of="$1/fill" bs=4k count=$((16 - $2)) 2> /dev/null &&
        env LD_PRELOAD="$3" MESHIM_CONFIG="$4" MESHIM_STATS_DIR="$1/stats" python3 "$5" "$6"' \
        sh "$TMP/small" "$1" "$MESHIM_PRELOAD" "$2" "$TMP/get.py" "http://orders:$port/who"
}
mkdir -p "$TMP/small"
printf '[service:orders]\nendpoints = 127.0.0.2:%s\n' "$port" > "$TMP/mesh.ini"
out=$(full 0 "$TMP/mesh.ini" 2>&1); rc=$?
[ "$rc" -eq 0 ] || fail "no room left: the client exited $rc: $out"
[ "$(grep -c '^backend-2$' <<< "$out")" -eq 3 ] || fail "no room left: $out"
# Each line says why, and what moves the folder or turns the feature off.
table_hint='(stats_dir names another folder, shared_state = off turns this off)'
stats_hint='(stats_dir or MESHIM_STATS_DIR names another folder, off turns them off)'
grep -q "warn: shared state: not using $TMP/small/stats/shared-endpoints.v1: No space left on device; .*$table_hint$" \
        <<< "$out" &&
    grep -q "warn: stats: not writing $TMP/small/stats/[0-9]*.stats: No space left on device; .*$stats_hint$" \
        <<< "$out" || fail "no room left: no line for the table or the stats, or no hint: $out"
ok "no room in the stats folder: 3 of 3 requests, one line each for the host table and the stats file"

printf '[meshim]\nshared_state = off\n[service:orders]\nendpoints = 127.0.0.2:%s, 127.0.0.3:%s\n' "$port" "$port" \
    > "$TMP/one-page.ini"
out=$(full 1 "$TMP/one-page.ini" 2>&1); rc=$?
[ "$rc" -eq 0 ] || fail "one page left: the client exited $rc: $out"
[ "$(grep -c '^backend-[23]$' <<< "$out")" -eq 3 ] || fail "one page left: $out"
[ "$(grep -c "warn: stats: cannot grow $TMP/small/stats/[0-9]*.stats: No space left on device; new series are not counted" <<< "$out")" -eq 1 ] ||
    fail "one page left: not one line for the slots that did not fit: $out"
ok "one page left in the stats folder: 3 of 3 requests, one line for the series not counted"

# The access log and log_file on a full file system: the first lost line is
# said once (the warning goes to stderr as well, since log_file cannot take
# it either), and so is the end of it, when room comes back.
cat > "$TMP/then.py" <<'PY'
import os, sys, urllib.request
for i in range(6):
    if i == 3:
        os.unlink(sys.argv[2])      # room again
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())
PY
printf '[meshim]\nshared_state = off\nstats_dir = off\nlog_level = info\naccess_log = %s\nlog_file = %s\n[service:orders]\nendpoints = 127.0.0.2:%s\n' \
    "$TMP/small/access.log" "$TMP/small/meshim.log" "$port" > "$TMP/logs.ini"
unshare -m sh -c '
    mount -t tmpfs -o size=64k,mode=0755 tmpfs "$1" && : > "$1/access.log" && : > "$1/meshim.log" &&
    dd if=/dev/zero of="$1/fill" bs=4k count=16 2> /dev/null;
    env LD_PRELOAD="$2" MESHIM_CONFIG="$3" python3 "$4" "$5" "$1/fill" &&
    cat "$1/access.log" > "$1/../access.copy" && cat "$1/meshim.log" > "$1/../meshim.copy"' \
    sh "$TMP/small" "$MESHIM_PRELOAD" "$TMP/logs.ini" "$TMP/then.py" "http://orders:$port/who" > "$TMP/logs.out" 2>&1 ||
    fail "logs on a full disk: $(cat "$TMP/logs.out")"
[ "$(grep -c '^backend-2$' "$TMP/logs.out")" -eq 6 ] || fail "logs on a full disk: $(cat "$TMP/logs.out")"
[ "$(grep -c "warn: access_log: writing $TMP/small/access.log failed (No space left on device): lines are lost until it can be written" "$TMP/logs.out")" -eq 1 ] ||
    fail "not one line for the lost access-log lines: $(cat "$TMP/logs.out")"
grep -q "warn: access_log: writing $TMP/small/access.log again" "$TMP/meshim.copy" ||
    fail "no line in log_file when the access log could be written again: $(cat "$TMP/meshim.copy" "$TMP/logs.out")"
[ "$(grep -c '"service":"orders"' "$TMP/access.copy")" -ge 2 ] ||
    fail "the access log did not take the lines after room came back: $(cat "$TMP/access.copy")"
ok "access log on a full disk: 6 of 6 requests; one line when its lines start to be lost (on stderr, log_file being full too), one in log_file when they go in again"

# Room enough: the allocated files keep the size their readers check (the
# table is read by every process of the user, and by meshim stats).
unshare -m sh -c '
    mount -t tmpfs -o size=4m,mode=0700 tmpfs "$1" && mkdir "$1/stats" &&
    env LD_PRELOAD="$2" MESHIM_CONFIG="$3" MESHIM_STATS_DIR="$1/stats" python3 "$4" "$5" > /dev/null &&
    env LD_PRELOAD="$6" "$7" stats --dir "$1/stats"' \
    sh "$TMP/small" "$MESHIM_PRELOAD" "$TMP/mesh.ini" "$TMP/get.py" "http://orders:$port/who" \
    "$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" > "$TMP/roomy.out" 2>&1 || fail "room enough: $(cat "$TMP/roomy.out")"
grep -q "^  orders 127.0.0.2:$port  *closed" "$TMP/roomy.out" ||
    fail "room enough: the host table is not readable: $(cat "$TMP/roomy.out")"
ok "room enough: the host table made there is the size every reader checks"

# A table an older build made (sparse: holes punched in one made here), on
# a folder that is full: it is allocated before use, or refused with one
# line; the program carries on either way.
unshare -m sh -c '
    mount -t tmpfs -o size=1m,mode=0700 tmpfs "$1" && mkdir "$1/stats" &&
    env LD_PRELOAD="$2" MESHIM_CONFIG="$3" MESHIM_STATS_DIR="$1/stats" python3 "$4" "$5" > /dev/null &&
    fallocate -p -o 4096 -l 700000 "$1/stats/shared-endpoints.v1" &&
    dd if=/dev/zero of="$1/fill" bs=4k count=256 2> /dev/null;
    env LD_PRELOAD="$2" MESHIM_CONFIG="$3" MESHIM_STATS_DIR="$1/stats" python3 "$4" "$5"' \
    sh "$TMP/small" "$MESHIM_PRELOAD" "$TMP/mesh.ini" "$TMP/get.py" "http://orders:$port/who" > "$TMP/sparse.out" 2>&1 ||
    fail "a sparse table on a full folder: $(cat "$TMP/sparse.out")"
[ "$(grep -c '^backend-2$' "$TMP/sparse.out")" -eq 3 ] || fail "a sparse table on a full folder: $(cat "$TMP/sparse.out")"
grep -q "warn: shared state: not using $TMP/small/stats/shared-endpoints.v1: No space left on device" "$TMP/sparse.out" ||
    fail "a sparse table on a full folder: no line: $(cat "$TMP/sparse.out")"
ok "an older build's sparse table on a full folder: refused with one line, 3 of 3 requests"
