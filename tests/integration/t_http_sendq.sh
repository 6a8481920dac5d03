# protocol = http: the engine's short sends of a turn are made together,
# through io_uring (engine/sendq.c). Checked on python3 clients, nginx the
# server:
# - the short requests and answers that share a turn leave the engine in
#   one io_uring_enter (under strace, ab -k over 16 connections: fewer of
#   the shim's own send() than two per request), a lone one by send(); with
#   `[meshim] io_uring = off` there is no ring and one send() each;
# - a client that pipelines 3000 requests (small answers and 64 KiB ones
#   mixed) and reads none until its socket stops filling gets every answer
#   whole and in order: queued sends that found the socket full (EAGAIN,
#   short counts) wait for room and keep their order with the long sends
#   made at once;
# - a fork child makes its own ring (two io_uring_setup) and both
#   processes get their answers;
# - under a seccomp filter that kills at any io_uring call (systemd's
#   SystemCallFilter= does that for calls it does not list), the program
#   lives and gets its answers: the shim never tries the ring there.
. "$(dirname "$0")/lib.sh"
shims python3 ab

port=$(free_port)
mkdir -p "$TMP/www"
head -c 65536 /dev/urandom > "$TMP/www/big"
chmod -R o+rX "$TMP/www"
start_nginx web "server { listen 127.0.0.2:$port; root $TMP/www;
    location /n/ { return 200 \"\$request_uri\n\"; } }"
wait_port 127.0.0.2 "$port"

printf '[service:web]\nprotocol = http\nendpoints = 127.0.0.2:%s\n' "$port" > "$TMP/on.ini"
printf '[meshim]\nio_uring = off\n[service:web]\nprotocol = http\nendpoints = 127.0.0.2:%s\n' "$port" > "$TMP/off.ini"

# client.py N [fork]: N keep-alive GETs of /n/I on one connection, each
# answer checked; with fork, after N/2 the process forks and both go on
# (the child on a connection of its own).
cat > "$TMP/client.py" <<'PY'
import http.client, os, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
forking = len(sys.argv) > 3
def run(first, last, who):
    c = http.client.HTTPConnection("web", port, timeout=20)
    for i in range(first, last):
        c.request("GET", "/n/%s-%d" % (who, i))
        r = c.getresponse()
        body = r.read()
        if r.status != 200 or body != b"/n/%s-%d\n" % (who.encode(), i):
            sys.exit("%s: request %d: %d %r" % (who, i, r.status, body[:60]))
    c.close()
if not forking:
    run(0, n, "main")
    sys.exit(0)
run(0, n // 2, "parent")
pid = os.fork()
if pid == 0:
    try:
        run(0, n // 2, "child")
    except SystemExit as e:
        print(e, file=sys.stderr)
        os._exit(1)
    os._exit(0)
run(n // 2, n, "parent")
_, status = os.waitpid(pid, 0)
sys.exit(0 if status == 0 else "the child failed")
PY

# slow.py N: N pipelined GETs (every 50th for the 64 KiB /big, else /n/I)
# written at once; nothing is read until the socket has stopped filling
# (the proxy holds answers it cannot send), then every answer is read and
# checked, in order.
cat > "$TMP/slow.py" <<'PY'
import fcntl, socket, struct, sys, termios, time
n, port, big = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "rb").read()
s = socket.create_connection(("web", port), timeout=30)
paths = ["/big" if i % 50 == 49 else "/n/%d" % i for i in range(n)]
s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: web\r\n\r\n" % p.encode() for p in paths))
def queued():
    return struct.unpack("i", fcntl.ioctl(s, termios.FIONREAD, b"\0\0\0\0"))[0]
last, still, deadline = -1, 0, time.monotonic() + 20
while still < 10 and time.monotonic() < deadline:
    now = queued()
    still = still + 1 if now == last and now > 0 else 0
    last = now
    time.sleep(0.1)
f = s.makefile("rb")
for i, p in enumerate(paths):
    status = f.readline()
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    body = f.read(length)
    want = big if p == "/big" else (p + "\n").encode()
    if not status.startswith(b"HTTP/1.1 200") or body != want:
        sys.exit("answer %d (%s): %r, %d bytes" % (i, p, status, len(body or b"")))
print("read %d answers, %d bytes waited in the socket" % (n, last))
PY

# strace_client INI OUT ARGS...: client.py under strace (the io_uring_setup
# of every process), its output in OUT.
strace_client() {
    local ini=$1 out=$2
    shift 2
    MESHIM_CONFIG=$ini shimmed strace -f -qq -e trace=io_uring_setup -o "$out" \
        python3 "$TMP/client.py" "$@" 2> "$out.err" || fail "client.py failed ($ini): $(tail -3 "$out.err")"
}
# The shim's short sends in an strace file: sendto() of 8 KiB or less
# with MSG_NOSIGNAL (the engine's flags; ab and python3 send with none).
# (strace pads a short pid with spaces.)
shim_small_sends() {
    perl -ne '$c++ if /^\d+\s+sendto\(\d+, ".*"(?:\.\.\.)?, (\d+), MSG_\S*NOSIGNAL/ && $1 <= 8192;
              END { print $c + 0, "\n" }' "$1"
}

# ab_traced INI OUT: ab -k, 2000 requests over 16 connections, under
# strace (io_uring_setup, io_uring_enter and sendto of every thread).
ab_traced() {
    MESHIM_CONFIG=$1 shimmed strace -f -qq -e trace=execve,io_uring_setup,io_uring_enter,sendto -o "$2" \
        ab -k -n 2000 -c 16 "http://web:$port/n/ab" > "$2.out" 2>&1 || fail "ab failed ($1): $(tail -3 "$2.out")"
    grep -q "^Complete requests: *2000" "$2.out" && grep -q "^Failed requests: *0" "$2.out" ||
        fail "ab ($1): $(grep -E 'requests' "$2.out")"
}

ab_traced "$TMP/on.ini" "$TMP/on.trace"
setups=$(grep -cE 'io_uring_setup.*\) = [0-9]+$' "$TMP/on.trace" || true)
enters=$(grep -c 'io_uring_enter(' "$TMP/on.trace" || true)
small=$(shim_small_sends "$TMP/on.trace")
[ "$setups" = 1 ] || fail "expected one io_uring ring, saw $setups io_uring_setup: $(grep io_uring_setup "$TMP/on.trace")"
[ "$enters" -ge 1 ] && [ "$small" -lt 4000 ] ||
    fail "2000 requests over 16 connections: the engine made $small of its 4000 sends by send() and $enters io_uring_enter: $(grep -m3 sendto "$TMP/on.trace")"
ok "ab -k, 2000 requests over 16 connections: $((4000 - small)) of the engine's 4000 sends went in $enters io_uring_enter, the other $small alone in their turn by send()"

ab_traced "$TMP/off.ini" "$TMP/off.trace"
setups=$(grep -c 'io_uring_setup' "$TMP/off.trace" || true)
small=$(shim_small_sends "$TMP/off.trace")
[ "$setups" = 0 ] || fail "io_uring = off made a ring"
[ "$small" -ge 4000 ] ||
    fail "io_uring = off: expected a send() per request and per answer (4000), saw $small: $(grep -m3 sendto "$TMP/off.trace")"
ok "io_uring = off: no ring, the engine's $small sends made one by one"

MESHIM_CONFIG=$TMP/on.ini shimmed python3 "$TMP/slow.py" 3000 "$port" "$TMP/www/big" > "$TMP/slow.out" 2>&1 ||
    fail "pipelined client: $(tail -3 "$TMP/slow.out")"
ok "3000 pipelined requests read late: every answer whole and in order ($(cat "$TMP/slow.out"))"

strace_client "$TMP/on.ini" "$TMP/fork.trace" 100 "$port" fork
setups=$(grep -cE 'io_uring_setup.*\) = [0-9]+$' "$TMP/fork.trace" || true)
[ "$setups" = 2 ] || fail "expected a ring in the parent and one in the fork child, saw $setups"
ok "a fork child made its own ring; parent and child got their answers"

MESHIM_CONFIG=$TMP/on.ini shimmed "$ROOT/$BUILD/tests/deny_io_uring" python3 "$TMP/client.py" 100 "$port" \
    > "$TMP/seccomp.out" 2>&1 || fail "under a seccomp filter against io_uring: exit $? $(tail -3 "$TMP/seccomp.out")"
ok "under a seccomp filter that kills at any io_uring call, the client lived and got its 100 answers"
