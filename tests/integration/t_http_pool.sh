# protocol = http, the pool of upstream connections. Over mTLS: a request whose own connection is still being
# made is served by the first connection of its pool to be ready, as
# Envoy's pending requests are. The server (python3's threaded http.server
# behind a strict port) accepts one connection at a time until told to go
# on: a server whose workers are all busy. Two requests at once: one gets
# the accepted connection; the other's connection waits in the listen
# queue, so its handshake cannot end, and without the hand-over it would
# wait until connect_timeout (a minute here) for it. With it, the second
# request goes over the first connection as soon as the first answer is
# done, and its own connection goes on as a spare: once the server accepts
# it, it is finished and pooled (or taken over while still being made), so
# the next request goes over it, not over a third connection.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)

# The server: each answer says which accepted connection (1, 2, ...) it came
# over. It accepts a second connection only once $TMP/go exists; the first
# answer waits until the listen queue holds a connection (the other
# request's), so that both requests are under way at once.
cat > "$TMP/server.py" <<'PY'
import http.server, os, socket, struct, sys, threading, time
port, go, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
accepted = 0
answered_first = False
def note(text):
    with open(log, "a") as f:
        f.write(text + "\n")
def queued(listener):
    # TCP_INFO of a listening socket: tcpi_unacked is its accept queue's length.
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("<8B5I", info)[12]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        global answered_first
        if not answered_first:
            answered_first = True
            deadline = time.monotonic() + 20
            while queued(self.server.socket) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            note("queue %d" % queued(self.server.socket))
        body = ("conn=%d\n" % self.conn_no).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def setup(self):
        super().setup()
        self.conn_no = self.server.conn_no
class Server(http.server.ThreadingHTTPServer):
    def get_request(self):
        global accepted
        while accepted >= 1 and not os.path.exists(go):
            time.sleep(0.01)
        request = super().get_request()
        accepted += 1
        self.conn_no = accepted
        note("accepted %d" % accepted)
        return request
s = Server(("127.0.0.2", port), Handler)
note("ready")
s.serve_forever()
PY

# Each request in a thread of its own, on a connection of its own; the
# first round two at once, the second (once $TMP/again exists) one.
cat > "$TMP/client.py" <<'PY'
import http.client, os, sys, threading, time
port, again = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()     # one line at a time: print's pieces interleave between threads
def get(tag):
    c = http.client.HTTPConnection("orders", port, timeout=30)
    c.request("GET", "/" + tag)
    r = c.getresponse()
    line = "%s %d %s\n" % (tag, r.status, r.read().decode().strip())
    with lock:
        sys.stdout.write(line)
        sys.stdout.flush()
    c.close()
threads = [threading.Thread(target=get, args=(t,)) for t in ("a", "b")]
for t in threads:
    t.start()
for t in threads:
    t.join()
deadline = time.monotonic() + 30
while not os.path.exists(again) and time.monotonic() < deadline:
    time.sleep(0.01)
get("c")
PY

tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
tls_ini "$TMP/client.ini" web "[service:orders]" "protocol = http" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" "endpoints = 127.0.0.2:$port" \
    "connect_timeout = 60s"

MESHIM_CONFIG=$TMP/server.ini shimmed python3 "$TMP/server.py" "$port" "$TMP/go" "$TMP/server.log" \
    > "$TMP/server.out" 2>&1 &
PIDS+=($!)
wait_until "grep -q ready '$TMP/server.log' 2>/dev/null" || fail "the server did not start: $(cat "$TMP/server.out")"

MESHIM_CONFIG=$TMP/client.ini shimmed python3 "$TMP/client.py" "$port" "$TMP/again" \
    > "$TMP/client.out" 2> "$TMP/client.err" &
client=$!
PIDS+=($client)

# 1. Both requests answered over the one connection the server accepted,
#    the second's own still in the listen queue.
wait_until "[ \$(grep -c ' 200 ' '$TMP/client.out') = 2 ]" ||
    fail "two requests at once were not both answered while the server accepted one connection: $(cat "$TMP/client.out" "$TMP/client.err" "$TMP/server.log")"
grep -q '^queue 1$' "$TMP/server.log" || fail "the second request's connection never reached the listen queue: $(cat "$TMP/server.log")"
[ "$(grep -c ' 200 conn=1$' "$TMP/client.out")" = 2 ] ||
    fail "the answers did not both come over the first connection: $(cat "$TMP/client.out")"
ok "a request whose connection waits for the server to accept it is served by the connection freed first"

# 2. The server accepts the spare: it is finished, and the next request goes
#    over it, not over a third connection.
touch "$TMP/go"
wait_until "grep -q '^accepted 2$' '$TMP/server.log'" || fail "the server never accepted the spare connection: $(cat "$TMP/server.log")"
wait_until "grep -q 'served meanwhile is ready' '$TMP/client.err'" ||
    fail "the spare's handshake did not end: $(cat "$TMP/client.err")"
touch "$TMP/again"
wait "$client" || fail "the client failed: $(cat "$TMP/client.err")"
grep -q '^c 200 conn=2$' "$TMP/client.out" || fail "the next request did not go over the spare: $(cat "$TMP/client.out")"
grep -q '^accepted 3$' "$TMP/server.log" && fail "a third connection was opened: $(cat "$TMP/server.log")"
grep -q 'spare connection failed' "$TMP/client.err" && fail "the spare failed: $(cat "$TMP/client.err")"
ok "the connection it gave up was finished as a spare and served the next request"

# 3. The pool keeps what the program had in flight. 40 requests at once
#    (the server answers none until all 40 connections are in), then 40
#    more at once on new connections of the application's: they find the
#    40 pooled, and the server accepts no more. (With the pool capped at 32
#    idle, each such burst closed 8 and made them again: over mTLS, a full
#    handshake each.)
cat > "$TMP/burst_server.py" <<'PY'
import http.server, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
barrier = threading.Barrier(40, timeout=20)
first = threading.Semaphore(40)
accepted = 0
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        if first.acquire(blocking=False):
            barrier.wait()
        body = ("accepted=%d\n" % accepted).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    def get_request(self):
        global accepted
        request = super().get_request()
        accepted += 1
        return request
s = Server(("127.0.0.3", port), Handler)
open(log, "w").write("ready\n")
s.serve_forever()
PY
cat > "$TMP/burst_client.py" <<'PY'
import http.client, sys, threading
port = int(sys.argv[1])
lock = threading.Lock()
def get():
    c = http.client.HTTPConnection("burst", port, timeout=30)
    c.request("GET", "/")
    r = c.getresponse()
    line = "%d %s\n" % (r.status, r.read().decode().strip())
    with lock:
        sys.stdout.write(line)
        sys.stdout.flush()
    c.close()
for burst in range(2):
    threads = [threading.Thread(target=get) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
PY
bport=$(free_port)
python3 "$TMP/burst_server.py" "$bport" "$TMP/burst.log" > "$TMP/burst_server.out" 2>&1 &
PIDS+=($!)
wait_until "grep -q ready '$TMP/burst.log' 2>/dev/null" || fail "the burst server did not start: $(cat "$TMP/burst_server.out")"
printf '[service:burst]\nprotocol = http\nendpoints = 127.0.0.3:%s\n' "$bport" > "$TMP/burst.ini"
MESHIM_CONFIG=$TMP/burst.ini shimmed python3 "$TMP/burst_client.py" "$bport" > "$TMP/burst.out" 2> "$TMP/burst.err" ||
    fail "the burst client failed: $(tail -3 "$TMP/burst.err")"
[ "$(grep -c '^200 ' "$TMP/burst.out")" = 80 ] || fail "not every request of the bursts was answered: $(sort "$TMP/burst.out" | uniq -c)"
[ "$(sort -u "$TMP/burst.out")" = "200 accepted=40" ] ||
    fail "the second burst did not find the first's 40 connections pooled: $(sort "$TMP/burst.out" | uniq -c)"
ok "a burst of 40 requests finds the 40 connections of the one before it in the pool"
