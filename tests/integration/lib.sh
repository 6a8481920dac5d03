# Sourced by every integration test. Real programs on loopback only:
# backends on 127.0.0.2-4, clients under LD_PRELOAD. Everything a test starts
# it records in PIDS and stops by pid on exit, pass or fail. KEEP_TMP=1
# keeps the test's folder (its logs) and prints where it is.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
. tests/preload.sh
MESHIM_CMD=$ROOT/$BUILD/meshim
TMP=$(mktemp -d /tmp/meshim-it.XXXXXX)
PIDS=()
unset MESHIM_CONFIG MESHIM_SERVICES MESHIM_DISABLE MESHIM_LOG_LEVEL MESHIM_LOG_FILE
# Each test its own stats folder, and so its own host endpoint table (the
# shim makes the folder). The default, /tmp/meshim-UID, is the host's: a
# circuit one test left open for 127.0.0.3:PORT met the next test that drew
# the same free port ("after 1 attempt"), and the tests' failures landed in
# the table of the developer's own programs. A test that names its folder
# in its INI unsets this (the variable wins over the file).
export MESHIM_STATS_DIR=$TMP/stats

# A function started with & (shimmed, start_*) runs in a subshell: $! is
# that subshell's pid, and the program is its child. So each recorded
# pid's children are stopped with it (by parent pid), or they outlive the
# test and hold their ports.
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        pkill -P "$p" 2>/dev/null
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    # A daemon (NGINX_DAEMON) is not this shell's child, and wait does not
    # wait for it: up to 5 s more, so that its ports are free when the
    # next test starts.
    local i
    for p in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    [ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

ok() {
    echo "ok: $*"
}

# A TCP port free on every loopback address right now. The tests listen on
# 127.0.0.2 and 127.0.0.3 as well: a port asked of 127.0.0.1 alone can be
# one a listener (or an accepted connection's TIME_WAIT) already holds on
# 127.0.0.2, and the server a test starts there then fails with EADDRINUSE.
# The wildcard address conflicts with a port held on any of them.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'
}

# How long a readiness wait may last, in tenths of a second: 10 s, times
# WAIT_SCALE where everything is slower (the Makefile sets it for the tests
# inside user-mode Linux, whose one vCPU takes a second or more to start a
# meshed python3). Only a broken test ever waits that long.
WAIT_TENTHS=$((100 * ${WAIT_SCALE:-1}))

# wait_until 'CONDITION': true as soon as the shell condition holds, false
# if it still does not after WAIT_TENTHS tenths of a second.
wait_until() {
    local i
    for ((i = 0; i < WAIT_TENTHS; i++)); do
        eval "$1" && return 0
        sleep 0.1
    done
    return 1
}

# Waits until something accepts on HOST:PORT.
wait_port() {
    wait_until "(exec 3<>/dev/tcp/$1/$2) 2> /dev/null" ||
        fail "nothing listening on $1:$2 after $((WAIT_TENTHS / 10)) s"
}

# Waits until a UDP socket is bound to PORT (a DNS server of the test's
# own: a query sent before it is answered by the kernel's port unreachable,
# which a test that waits for a silent server would read as its answer).
wait_udp() {
    wait_until "ss -Hulnp 'sport = :$1' | grep -q ." || fail "nothing bound to UDP port $1 after $((WAIT_TENTHS / 10)) s"
}

# start_backend N PORT: python3 http.server (file_server.py: its listen queue
# is 128, not 5) on 127.0.0.N serving /who as
# "backend-N" (its log appended to $TMP/backendN.log); its pid is left in
# $BACKEND_PID (and in PIDS). Does not wait for it to listen.
start_backend() {
    local i=$1 port=$2
    mkdir -p "$TMP/www$i"
    echo "backend-$i" > "$TMP/www$i/who"
    python3 "$ROOT/tests/helpers/file_server.py" "127.0.0.$i" "$port" "$TMP/www$i" \
        >>"$TMP/backend$i.log" 2>&1 &
    BACKEND_PID=$!
    PIDS+=($!)
}

# start_backends PORT: backends 2, 3 and 4 (PIDS[0..2]), listening.
start_backends() {
    local port=$1 i
    for i in 2 3 4; do start_backend "$i" "$port"; done
    for i in 2 3 4; do wait_port "127.0.0.$i" "$port"; done
}

# start_nginx NAME 'http block lines' [VAR=VALUE...]: nginx with $TMP/NAME as
# its prefix (error.log and stderr there), ${NGINX_WORKERS:-1} workers (as
# nobody, or as $NGINX_USER), in the caller's environment plus the
# variables given; in PIDS; does not wait. With NGINX_DAEMON=1 nginx
# daemonizes (as its binary upgrade needs) and the master's pid, from its
# pid file, goes in PIDS.
start_nginx() {
    local name=$1 http=$2 d=$TMP/$1 daemon=off
    [ -z "${NGINX_DAEMON:-}" ] || daemon=on
    shift 2
    mkdir -p "$d"
    chmod o+rx "$TMP" "$d"      # workers run as nobody
    cat > "$d/nginx.conf" <<CONF
daemon $daemon;
${NGINX_USER:+user $NGINX_USER;}
worker_processes ${NGINX_WORKERS:-1};
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    $http
}
CONF
    # By its full path: nginx runs argv[0] again for a binary upgrade.
    if [ -z "${NGINX_DAEMON:-}" ]; then
        env "$@" "$(command -v nginx)" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" 2> "$d/stderr" &
        PIDS+=($!)
        return
    fi
    env "$@" "$(command -v nginx)" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" 2> "$d/stderr" ||
        fail "nginx did not start: $(cat "$d/stderr" "$d/error.log" 2> /dev/null)"
    wait_until "[ -s '$d/nginx.pid' ]" || fail "nginx wrote no pid file: $(cat "$d/error.log")"
    PIDS+=("$(cat "$d/nginx.pid")")
}

# start_nginx_proxy FRONT UPSTREAM [WORKERS]: shimmed nginx on
# 127.0.0.1:FRONT with proxy_pass http://UPSTREAM, files in $TMP/nginx;
# returns once it listens.
start_nginx_proxy() {
    local front=$1 upstream=$2
    NGINX_WORKERS=${3:-1} start_nginx nginx \
        "server { listen 127.0.0.1:$front; location / { proxy_pass http://$upstream; } }" \
        LD_PRELOAD="$MESHIM_PRELOAD"
    wait_port 127.0.0.1 "$front"
}

# Runs a command with the shim preloaded.
shimmed() {
    env LD_PRELOAD="$MESHIM_PRELOAD" "$@"
}

# The meshim command (with the ASan runtime preloaded in the ASan build).
meshim() {
    env LD_PRELOAD="$MESHIM_CMD_PRELOAD" "$MESHIM_CMD" "$@"
}

# True under the ASan build (where curl and wget cannot run under the shim).
under_asan() {
    case "$MESHIM_PRELOAD" in *libasan*) return 0 ;; *) return 1 ;; esac
}

# shims PROGRAM...: the test runs these under the shim. curl and wget hang
# in setlocale() when any ASan runtime is preloaded into them (with or
# without meshim), and lftp hangs too (`lftp -e bye` with only libasan
# preloaded), so under the ASan build such a test is skipped (exit 77);
# the plain build runs it in full.
shims() {
    local p
    case "$MESHIM_PRELOAD" in *libasan*) ;; *) return 0 ;; esac
    for p in "$@"; do
        case "$p" in
            curl|wget|lftp) echo "skip: $p hangs with an ASan runtime preloaded (runs in the plain build)"; exit 77 ;;
        esac
    done
}

# count NAME FILE: how many lines of FILE are exactly NAME.
count() {
    grep -cx "$1" "$2" || true
}

# Every backend answered at least MIN of the lines in FILE.
assert_spread() {
    local file=$1 min=$2 what=$3 i n
    for i in 2 3 4; do
        n=$(count "backend-$i" "$file")
        [ "$n" -ge "$min" ] || fail "$what: backend-$i answered $n times (want >= $min); got: $(sort "$file" | uniq -c | tr '\n' ' ')"
    done
    ok "$what: $(sort "$file" | uniq -c | tr -s ' ' | tr '\n' ' ')"
}

# start_black_hole IP PORT: a listener with backlog 0 that never accepts,
# its queue already full, so further SYNs are dropped and connects to
# IP:PORT time out (DESIGN §7). Checked before the test goes on.
start_black_hole() {
    local ip=$1 port=$2
    python3 - "$ip" "$port" "$TMP/hole-$ip.ready" <<'PY' &
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
l = socket.socket(); l.bind((ip, port)); l.listen(0)
fill = []
for _ in range(3):
    s = socket.socket(); s.setblocking(False)
    try: s.connect((ip, port))
    except BlockingIOError: pass
    fill.append(s)
time.sleep(0.3)
open(sys.argv[3], "w").write("ready")
time.sleep(600)
PY
    PIDS+=($!)
    wait_until "[ -f $TMP/hole-$ip.ready ]" || fail "the black hole on $ip:$port never got ready"
    python3 -c "
import socket
try:
    socket.create_connection(('$ip', $port), 0.5); print('connected')
except (socket.timeout, TimeoutError): print('timeout')" | grep -qx timeout || fail "$ip:$port is not a black hole"
}

# traced TRACE CMD...: runs CMD under the shim, recording its connect()
# calls in TRACE; connects_to IP TRACE counts those to IP (the ground truth:
# log lines are rate-limited and cannot be counted).
traced() {
    local trace=$1
    shift
    strace -f -qq -e trace=connect -o "$trace" env LD_PRELOAD="$MESHIM_PRELOAD" "$@"
}
connects_to() {
    grep -c "connect(.*inet_addr(\"$1\")" "$2" || true
}

# spans_where 'PYTHON CONDITION on s' [N]: waits until N (1) of the spans
# otlp_receiver.py wrote to $TMP/spans match.
spans_where() {
    wait_until "python3 - '$TMP/spans' '${2:-1}' <<'PY'
import json, sys
n = 0
try:
    for line in open(sys.argv[1]):
        s = json.loads(line)
        n += bool($1)
except FileNotFoundError:
    pass
sys.exit(0 if n >= int(sys.argv[2]) else 1)
PY"
}

# start_otlp_receiver: otlp_receiver.py on 127.0.0.1:$otlp (set here), its
# spans in $TMP/spans.
start_otlp_receiver() {
    otlp=$(free_port)
    python3 "$ROOT/tests/integration/otlp_receiver.py" "$otlp" "$TMP/spans" > "$TMP/receiver.out" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.1 "$otlp"
}

# traced_get SERVICE ENDPOINT URL [LOG]: a meshed python3 client (tracing
# on, SERVICE at ENDPOINT with protocol = http) GETs URL, whose answer is the
# traceparent the last upstream was sent. Sets trace and call_span from it;
# fails (showing LOG) when the call fails or carried none. Needs
# start_otlp_receiver's $TMP/spans.
traced_get() {
    cat > "$TMP/client.ini" <<INI
[tracing]
otlp_endpoint = http://127.0.0.1:$otlp/v1/traces
[service:$1]
endpoints = $2
protocol = http
INI
    local got
    # The client stays until its own span has reached the receiver (the
    # batch leaves 200 ms after it): at exit the shim gives the last batch
    # 500 ms, which a loaded machine under ASan has overrun.
    got=$(MESHIM_CONFIG=$TMP/client.ini shimmed python3 -c '
import json, sys, time, urllib.request
got = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
sys.stdout.write(got)
sys.stdout.flush()
parts, deadline = got.split("-"), time.monotonic() + 20
while len(parts) == 4 and time.monotonic() < deadline:
    try:
        spans = [json.loads(line) for line in open(sys.argv[2])]
    except (OSError, ValueError):
        spans = []
    if any(s["traceId"] == parts[1] and s["kind"] == 3 and "parentSpanId" not in s for s in spans):
        break
    time.sleep(0.05)' "$3" "$TMP/spans") ||
        fail "the client: $got ${4:+$(cat "$4")}"
    [[ $got =~ ^00-([0-9a-f]{32})-([0-9a-f]{16})-01$ ]] || fail "the upstream got no traceparent: '$got'"
    trace=${BASH_REMATCH[1]} call_span=${BASH_REMATCH[2]}
}

# start_traced_upstream: "inventory", a meshed python3 server
# (tests/helpers/http_backend.py) on the http port 127.0.0.3:$inv (set
# here), its server spans sent to the receiver.
start_traced_upstream() {
    inv=$(free_port)
    cat > "$TMP/inventory.ini" <<INI
[tracing]
otlp_endpoint = http://127.0.0.1:$otlp/v1/traces
service_name = inventory
[inbound:$inv]
tls = off
protocol = http
INI
    MESHIM_CONFIG=$TMP/inventory.ini shimmed python3 "$ROOT/tests/helpers/http_backend.py" 127.0.0.3 "$inv" \
        inventory "$TMP/inventory.log" > "$TMP/inventory.out" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.3 "$inv"
}
