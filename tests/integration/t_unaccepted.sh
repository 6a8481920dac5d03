# An mTLS server whose program does not accept for a while (a slow command,
# a garbage collection; here SIGSTOP): its kernel takes the TCP connection
# into the backlog, but the handshake waits for the program's accept. A
# plain TCP client waits there too and is served when the program goes on;
# a meshed one used to fail each attempt at connect_timeout, fail the
# connect after its retries, and with five such failures eject the
# endpoint, so that every process of the host was refused for eject_time
# after the server was back (a redis server paused by DEBUG SLEEP 3: 6 of 6
# of its meshed clients failed, and the next ones were refused for 30 s).
# - a server paused 4 s (longer than the 3 attempts of 1 s): blocking and
#   non-blocking (asyncio) clients are all answered when it goes on, the
#   endpoint is not ejected, and a new client is served at once after;
# - the same for a protocol = http service (the engine's upstream
#   connection): the request waits and is answered;
# - two endpoints, one paused: a connect that tried it first goes to the
#   other at connect_timeout (no waiting when another endpoint is left);
# - a server that never goes on: the connection ends 10 s after it was
#   reported, with a warning, and counts against the endpoint; a
#   protocol = http request's wait ends at its per_try_timeout (else 10 s).
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" start_backend 2 "$port"
paused=$BACKEND_PID
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" start_backend 3 "$port"
live=$BACKEND_PID
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.3 "$port"
tls_ini "$TMP/client.ini" web \
    "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls" \
    "[service:two]" "endpoints = 127.0.0.2:$port, 127.0.0.3:$port" "tls = mtls" "lb = round_robin" \
    "[service:webapi]" "endpoints = 127.0.0.2:$port" "tls = mtls" "protocol = http" \
    "[service:webtwo]" "endpoints = 127.0.0.2:$port, 127.0.0.3:$port" "tls = mtls" "protocol = http" "lb = round_robin" \
    "[service:bounded]" "endpoints = 127.0.0.2:$port" "tls = mtls" "protocol = http" "per_try_timeout = 2s" "retries = 0"

# clients SERVICE N OUT: N blocking (no timeout: the shim's connect in the
# caller's thread) and N asyncio (non-blocking: the engine's) clients at once, each
# connects, writes "connected" to OUT.conn, then GETs /who; each line of
# OUT: what one got, or its error.
clients() {
    MESHIM_CONFIG=$TMP/client.ini shimmed python3 - "$1" "$port" "$2" "$3.conn" > "$3" 2> "$3.err" <<'PY' &
import asyncio, socket, sys, threading
service, port, n, conn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4], "a")
GET = b"GET /who HTTP/1.0\r\nHost: x\r\n\r\n"
out = []
def connected():
    conn.write("connected\n")
    conn.flush()
def body(answer):
    return answer.split(b"\r\n\r\n", 1)[1].decode().strip()
def blocking():
    try:
        s = socket.socket()
        s.connect((service, port))      # a blocking socket: connect() in the caller's thread
        connected()
        s.settimeout(30)
        s.sendall(GET)
        answer = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            answer += d
        out.append("blocking " + body(answer))
    except Exception as e:
        out.append("blocking error %r" % e)
async def nonblocking():
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(service, port), 30)
        connected()
        w.write(GET)
        out.append("asyncio " + body(await asyncio.wait_for(r.read(), 30)))
    except Exception as e:
        out.append("asyncio error %r" % e)
async def main():
    await asyncio.gather(*(nonblocking() for _ in range(n)))
threads = [threading.Thread(target=blocking) for _ in range(n)]
for t in threads: t.start()
asyncio.run(main())
for t in threads: t.join()
print("\n".join(out))
PY
    CLIENTS=$!
    PIDS+=($CLIENTS)
}

# get SERVICE OUT: one GET /who by python3's http.client (not curl, which
# hangs with an ASan runtime preloaded); OUT: status and body, or the error.
get() {
    MESHIM_CONFIG=$TMP/client.ini shimmed python3 - "$1" "$port" > "$2" 2> "$2.err" <<'PY'
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
try:
    c.request("GET", "/who")
    r = c.getresponse()
    print(r.status, r.read().decode().strip())
except Exception as e:
    print("error %r" % e)
PY
    local rc=$?
    [ $rc -eq 0 ] || echo "python3 ended with status $rc" >> "$2"
}

# --- a server paused 4 s ------------------------------------------------------
kill -STOP "$paused"
clients orders 3 "$TMP/paused.out"
# Each connect is reported once its attempt's time is up (no other endpoint),
# while the server is still paused.
wait_until '[ "$(cat "$TMP/paused.out.conn" 2>/dev/null | wc -l)" -ge 6 ]' ||
    { kill -CONT "$paused"; fail "the connects were not reported: $(grep -v debug "$TMP/paused.out.err" | tail -5)"; }
sleep 3                                 # the pause goes on: 4 s in all, past 3 attempts of 1 s
kill -CONT "$paused"
grep -q "has not accepted the connection after connect_timeout and no other endpoint is left" "$TMP/paused.out.err" ||
    fail "no line says why the connects were reported before the handshake"
wait "$CLIENTS" || fail "clients of a paused server: $(cat "$TMP/paused.out"; tail -3 "$TMP/paused.out.err")"
n=$(grep -c "backend-2$" "$TMP/paused.out" || true)
[ "$n" = 6 ] || fail "a server paused 4 s: $n of 6 clients answered: $(cat "$TMP/paused.out"; grep -v debug "$TMP/paused.out.err" | tail -4)"
grep -q "ejected" "$TMP/paused.out.err" && fail "the paused endpoint was ejected: $(grep ejected "$TMP/paused.out.err")"
clients orders 1 "$TMP/after.out"
wait "$CLIENTS" || fail "a client after the pause: $(cat "$TMP/after.out" "$TMP/after.out.err")"
[ "$(grep -c "backend-2$" "$TMP/after.out")" = 2 ] || fail "after the pause: $(cat "$TMP/after.out")"
ok "a server paused 4 s: 6 of 6 blocking and asyncio clients answered when it went on; not ejected, served at once after"

# --- protocol = http: the request waits for the paused server ----------------
# The engine's own upstream connection (its pool's), not the application's:
# its three attempts of 1 s used to end in a 503 and three failures.
kill -STOP "$paused"
get webapi "$TMP/http.out" &
get_pid=$!
PIDS+=($get_pid)
wait_until 'grep -q "has not accepted the connection after connect_timeout and no other endpoint is left: the request waits for it" "$TMP/http.out.err"' ||
    { kill -CONT "$paused"; fail "protocol = http: the request did not wait for the paused server: $(cat "$TMP/http.out"; grep -v debug "$TMP/http.out.err" | tail -3)"; }
sleep 3                                 # the pause goes on: past the 3 attempts of 1 s
kill -CONT "$paused"
wait "$get_pid"
[ "$(cat "$TMP/http.out")" = "200 backend-2" ] ||
    fail "protocol = http, paused server: got '$(cat "$TMP/http.out")'; $(grep -v debug "$TMP/http.out.err" | tail -3)"
grep -E "ejected| retried: |answered [0-9]+ here" "$TMP/http.out.err" && fail "protocol = http: the paused server cost a retry or a failure"
get webapi "$TMP/http2.out"
[ "$(cat "$TMP/http2.out")" = "200 backend-2" ] || fail "protocol = http: a request after the pause got '$(cat "$TMP/http2.out")'"
ok "protocol = http over mTLS, a server paused 4 s: the request waited for it (200 when it went on), no failure counted; the next one answered"

# --- two endpoints, one paused: the other takes the connect ----------------
kill -STOP "$paused"
clients two 2 "$TMP/two.out"
# protocol = http alike: two requests in one process, one to each endpoint
# first (round robin).
MESHIM_CONFIG=$TMP/client.ini shimmed python3 - "$port" > "$TMP/webtwo.out" 2> "$TMP/webtwo.err" <<'PY'
import http.client, sys
for _ in range(2):
    c = http.client.HTTPConnection("webtwo", int(sys.argv[1]), timeout=30)
    c.request("GET", "/who")
    r = c.getresponse()
    print(r.status, r.read().decode().strip())
    c.close()
PY
wait "$CLIENTS" || { kill -CONT "$paused"; fail "clients of two endpoints: $(cat "$TMP/two.out")"; }
kill -CONT "$paused"
[ "$(cat "$TMP/webtwo.out" | tr '\n' ' ')" = "200 backend-3 200 backend-3 " ] ||
    fail "protocol = http, one endpoint of two paused: $(cat "$TMP/webtwo.out"; grep -v debug "$TMP/webtwo.err" | tail -3)"
grep -q "the request waits for it" "$TMP/webtwo.err" &&
    fail "a request waited for the paused endpoint with another left: $(grep 'waits for it' "$TMP/webtwo.err")"
grep -q "webtwo: GET /who retried: 127.0.0.2:$port: connect: timed out" "$TMP/webtwo.err" ||
    fail "no request tried the paused endpoint first: $(grep -v debug "$TMP/webtwo.err" | tail -3)"
n=$(grep -c "backend-3$" "$TMP/two.out" || true)
[ "$n" = 4 ] || fail "one endpoint of two paused: $n of 4 served by the other: $(cat "$TMP/two.out")"
grep -q "has not accepted the connection" "$TMP/two.out.err" &&
    fail "a connect waited for the paused endpoint with another left: $(grep 'not accepted' "$TMP/two.out.err")"
grep -q "attempt 1 to 127.0.0.2:$port failed: TLS handshake: timed out" "$TMP/two.out.err" ||
    fail "no connect tried the paused endpoint first (round robin over two, four connects)"
ok "one endpoint of two paused: all 4 connects and 2 protocol = http requests served by the other, those that tried the paused one first at its connect_timeout"

# --- a server that never goes on ----------------------------------------------
kill -STOP "$paused"
clients orders 1 "$TMP/hung.out"
# Meanwhile protocol = http: the wait ends at per_try_timeout (2 s).
get bounded "$TMP/bounded.out"
wait "$CLIENTS"
kill -CONT "$paused"
case "$(cat "$TMP/bounded.out")" in "503 "*) ;; *) fail "protocol = http, a hung server, per_try_timeout = 2s: got '$(cat "$TMP/bounded.out")' (want 503)" ;; esac
grep -q "bounded: GET bounded:$port/who answered 503 here: 127.0.0.2:$port: TLS handshake: the server did not accept in time" \
    "$TMP/bounded.out.err" || fail "protocol = http, a hung server: no line says why: $(grep -v debug "$TMP/bounded.out.err" | tail -3)"
n=$(grep -c "error" "$TMP/hung.out" || true)
[ "$n" = 2 ] || fail "a hung server: $n of 2 clients saw an error: $(cat "$TMP/hung.out")"
grep -q "which accepted after the connect was reported: TLS handshake: the server did not accept within 10 s; the connection ends" \
    "$TMP/hung.out.err" || fail "a hung server: no warning: $(grep -v debug "$TMP/hung.out.err" | tail -3)"
ok "a server that never accepts: both connections end 10 s after they were reported, with a warning; a protocol = http request is answered 503 at its per_try_timeout"
