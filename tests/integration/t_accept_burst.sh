# A burst of connects to a lone, live endpoint whose accept queue is full.
# Linux drops the SYNs that do not fit; unmeshed, the client's kernel sends
# each again after 1 s and the connect succeeds late. Meshed, those attempts
# time out together (connect_timeout) and are retried; before, their
# timeouts counted as eject_after consecutive failures, the endpoint was
# ejected from every process of the host, and the retries and the connects
# after them were refused. A timeout from an endpoint that completed
# another connect within a connect_timeout of it is not counted: the
# endpoint is alive.
# - python3 (20 non-blocking connects, 10 blocking ones) against a server
#   with a backlog of 1 that accepts only once five of them have timed
#   out: all 30 answered, the timed-out ones on their retry, the circuit
#   closed;
# - the same with 12 requests of a protocol = http service, whose upstream
#   connects the engine makes: all answered 200;
# - a black hole (nothing ever answers) is still ejected after eject_after
#   timeouts (the control).
. "$(dirname "$0")/lib.sh"

port=$(free_port)
hole_port=$(free_port)
start_black_hole 127.0.0.5 "$hole_port"
http_port=$(free_port)
python3 "$ROOT/tests/helpers/late_accept_server.py" 127.0.0.2 "$port" "$TMP/go-tcp" > "$TMP/server.out" 2>&1 &
PIDS+=($!)
python3 "$ROOT/tests/helpers/late_accept_server.py" 127.0.0.2 "$http_port" "$TMP/go-http" > "$TMP/server-http.out" 2>&1 &
PIDS+=($!)
# Not wait_port: its connection would take a place in the small queue.
wait_until "grep -q listening '$TMP/server.out' && grep -q listening '$TMP/server-http.out'" ||
    fail "the servers did not start: $(cat "$TMP/server.out" "$TMP/server-http.out")"
cat > "$TMP/mesh.ini" <<INI
[meshim]
log_level = info
[service:queue]
endpoints = 127.0.0.2:$port
connect_timeout = 5s
[service:queue-http]
endpoints = 127.0.0.2:$http_port
connect_timeout = 5s
protocol = http
[service:hole]
endpoints = 127.0.0.5:$hole_port
connect_timeout = 300ms
retries = 0
INI
export MESHIM_CONFIG=$TMP/mesh.ini MESHIM_ACCESS_LOG=$TMP/access.log
circuit() { meshim stats 2>&1 | grep "^  $1 " || true; }

# Attempts of SERVICE's client that timed out (meshim stats' TIMEOUT).
timeouts() { meshim stats 2>&1 | awk -v s="$1" '$1 == s { print $4; exit }' | grep . || echo 0; }

# burst NAME SERVICE PORT MODE ARGS...: probe_burst.py MODE SERVICE PORT
# ARGS... against the server NAME, which accepts only once eject_after (5)
# attempts have timed out: those timeouts ejected the endpoint before, and
# the retries that follow them were refused. Their retries' SYNs are
# dropped too until then; the kernel resends each after 1 s and 3 s,
# inside the retry's 5 s. Then every connection must have been answered,
# the circuit closed, nothing ejected. $client: the client's pid.
burst() {
    local name=$1 svc=$2 port=$3 mode=$4
    shift 4
    env LD_PRELOAD="$MESHIM_PRELOAD" python3 "$ROOT/tests/helpers/probe_burst.py" "$mode" "$svc" "$port" "$@" \
        > "$TMP/$name.out" 2> "$TMP/$name.err" &
    client=$!
    PIDS+=($client)
    WAIT_TENTHS=$((WAIT_TENTHS + 100)) wait_until "[ \$(timeouts $svc) -ge 5 ]" ||
        fail "$svc: fewer than 5 attempts timed out: $(cat "$TMP/$name.out"; tail -3 "$TMP/$name.err")"
    touch "$TMP/go-$name"
    wait "$client" || fail "probe_burst $mode exited $?: $(tail -3 "$TMP/$name.err")"
    grep -qx "answered \([0-9]*\) of \1" "$TMP/$name.out" ||
        fail "$svc: the burst was not answered whole: $(cat "$TMP/$name.out"; grep -v "attempt 1 to" "$TMP/$name.err" | tail -3)"
    circuit "$svc 127.0.0.2:$port" | grep -q " closed" || fail "the live endpoint's circuit is not closed: $(circuit "$svc")"
    grep -q "ejected" "$TMP/$name.err" && fail "the live endpoint was ejected: $(grep ejected "$TMP/$name.err")"
}

burst tcp queue "$port" tcp 20 10
grep -qx "answered 30 of 30" "$TMP/tcp.out" || fail "not 30 connections: $(cat "$TMP/tcp.out")"
retried=$(grep "\"pid\":$client," "$TMP/access.log" | grep -c '"attempts":2,' || true)
[ "$retried" -ge 5 ] || fail "only $retried connects timed out and were retried: the queue did not overflow, nothing was shown"
ok "30 connects against a full accept queue: all answered, $retried of them on a retry after their SYNs were dropped; the endpoint not ejected"

# The same through a protocol = http service: 12 requests at once, their
# upstream connects made by the engine, the timed-out ones retried.
burst http queue-http "$http_port" http 12
grep -qx "answered 12 of 12" "$TMP/http.out" || fail "not 12 requests: $(cat "$TMP/http.out")"
ok "12 requests of a protocol = http service against a full accept queue: all answered 200; the endpoint not ejected"

# The control: a black hole's timeouts still eject it.
for i in $(seq 1 5); do
    shimmed python3 -c "
import socket
try:
    socket.create_connection(('hole', $hole_port)).close()
except OSError:
    pass" 2>> "$TMP/hole.err"
done
circuit "hole 127.0.0.5:$hole_port" | grep -q "ejected" || fail "the black hole was not ejected after 5 timeouts: $(circuit hole)"
ok "a black hole is still ejected after eject_after (5) timeouts"
