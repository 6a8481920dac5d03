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
python3 "$ROOT/tests/helpers/late_accept_server.py" 127.0.0.2 "$port" "$TMP/go" > "$TMP/server.out" 2>&1 &
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

# The server accepts only once eject_after (5) attempts have timed out:
# those timeouts ejected the endpoint before, and the retries that follow
# them were refused. Their retries' SYNs are dropped too until then; the
# kernel resends each after 1 s and 3 s, inside the retry's 5 s.
env LD_PRELOAD="$MESHIM_PRELOAD" python3 "$ROOT/tests/helpers/probe_burst.py" tcp queue "$port" 20 10 \
    > "$TMP/burst.out" 2> "$TMP/burst.err" &
client=$!
PIDS+=($client)
# Attempts of the client that timed out (meshim stats' TIMEOUT column).
timeouts() { meshim stats 2>&1 | awk -v s="${1:-queue}" '$1 == s { print $4; exit }' | grep . || echo 0; }
WAIT_TENTHS=$((WAIT_TENTHS + 100)) wait_until "[ \$(timeouts) -ge 5 ]" ||
    fail "fewer than 5 attempts timed out: $(cat "$TMP/burst.out"; tail -3 "$TMP/burst.err")"
touch "$TMP/go"
wait "$client" || fail "probe_burst exited $?: $(tail -3 "$TMP/burst.err")"
grep -qx "answered 30 of 30" "$TMP/burst.out" ||
    fail "the burst was not answered whole: $(cat "$TMP/burst.out"; grep -v "attempt 1 to" "$TMP/burst.err" | tail -3)"
retried=$(grep "\"pid\":$client," "$TMP/access.log" | grep -c '"attempts":2,' || true)
[ "$retried" -ge 5 ] || fail "only $retried connects timed out and were retried: the queue did not overflow, nothing was shown"
circuit "queue 127.0.0.2:$port" | grep -q " closed" || fail "the live endpoint's circuit is not closed: $(circuit queue)"
grep -q "ejected" "$TMP/burst.err" && fail "the live endpoint was ejected: $(grep ejected "$TMP/burst.err")"
ok "30 connects against a full accept queue: all answered, $retried of them on a retry after their SYNs were dropped; the endpoint not ejected"

# The same through a protocol = http service: 12 requests at once, their
# upstream connects made by the engine, the timed-out ones retried.
env LD_PRELOAD="$MESHIM_PRELOAD" python3 "$ROOT/tests/helpers/probe_burst.py" http queue-http "$http_port" 12 \
    > "$TMP/http.out" 2> "$TMP/http.err" &
client=$!
PIDS+=($client)
WAIT_TENTHS=$((WAIT_TENTHS + 100)) wait_until "[ \$(timeouts queue-http) -ge 5 ]" ||
    fail "fewer than 5 upstream connects timed out: $(cat "$TMP/http.out"; tail -3 "$TMP/http.err")"
touch "$TMP/go-http"
wait "$client" || fail "probe_burst http exited $?: $(tail -3 "$TMP/http.err")"
grep -qx "answered 12 of 12" "$TMP/http.out" ||
    fail "the http burst was not answered whole: $(cat "$TMP/http.out"; grep -v "attempt 1 to" "$TMP/http.err" | tail -3)"
circuit "queue-http 127.0.0.2:$http_port" | grep -q " closed" || fail "the live endpoint's circuit is not closed: $(circuit queue-http)"
grep -q "ejected" "$TMP/http.err" && fail "the live endpoint was ejected: $(grep ejected "$TMP/http.err")"
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
