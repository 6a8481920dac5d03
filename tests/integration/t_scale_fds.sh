#!/usr/bin/env bash
# Descriptors at scale and at their limit (issue 15 part 4).
#   - 10,000 meshed connections held at once by one asyncio python3 client
#     (plain, one service): every one made and live (a byte each way), and
#     after they close the client holds the descriptors it had before;
#   - the application at EMFILE, plain and mTLS, blocking and non-blocking:
#     connect fails with EMFILE (or the socket() before it), nothing crashes,
#     no descriptor is left behind, and once descriptors are free again a
#     connect through the engine works (the engine is not stuck); it gets
#     there after about as many mTLS connections as plain ones (the shim
#     keeps its own above the program's limit), and never gets a number at
#     or past its own limit (socket, dup); the limit it reads and its
#     children inherit (fork+exec, subprocess, posix_spawn) is its own;
#   - a meshed mTLS server at EMFILE: clients beyond its limit are refused,
#     the server lives, and serves again when they are gone;
#   - a fresh mTLS client with only a few descriptors free: its non-blocking
#     connect fails or speaks TLS, never the application's bytes in the clear.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

ulimit -n 16384 2>/dev/null ||
    fail "cannot raise the descriptor limit to 16384 (hard limit $(ulimit -Hn)); this test needs it"

# An echo server (unmeshed) that holds any number of connections.
port=$(free_port)
python3 - "$port" > "$TMP/echo.log" 2>&1 <<'PY' &
import asyncio, sys
async def echo(r, w):
    try:
        while (d := await r.read(4096)):
            w.write(d)
            await w.drain()
    except OSError:
        pass
    w.close()
async def main():
    srv = await asyncio.start_server(echo, "127.0.0.2", int(sys.argv[1]), backlog=4096)
    await srv.serve_forever()
asyncio.run(main())
PY
PIDS+=($!)
wait_port 127.0.0.2 "$port"

cat > "$TMP/many.py" <<'PY'
import asyncio, os, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
def fds():
    return len(os.listdir("/proc/self/fd"))
async def main():
    base = fds()
    gate = asyncio.Semaphore(512)          # connects under way at once
    async def one():
        async with gate:
            return await asyncio.wait_for(asyncio.open_connection("orders", port), 30)
    t0 = time.monotonic()
    conns = await asyncio.gather(*(one() for _ in range(n)))
    held = fds() - base
    for r, w in conns:
        w.write(b"x")
    for r, w in conns:
        assert await asyncio.wait_for(r.readexactly(1), 30) == b"x"
    took = time.monotonic() - t0
    for r, w in conns:
        w.close()
    await asyncio.sleep(0)
    conns = None
    for _ in range(100):
        if fds() <= base:
            break
        await asyncio.sleep(0.1)
    print("connections=%d held_fds=%d seconds=%.1f after=%d base=%d" % (n, held, took, fds(), base))
    assert fds() <= base, (fds(), base)
asyncio.run(main())
PY
printf '[service:orders]\nendpoints = 127.0.0.2:%s\nmax_connections = 12000\n' "$port" > "$TMP/many.ini"
out=$(MESHIM_CONFIG=$TMP/many.ini shimmed python3 "$TMP/many.py" "$port" 10000 2> "$TMP/many.err") ||
    fail "10,000 connections: $out $(grep "^meshim\[" "$TMP/many.err" | sort | uniq -c | sort -rn | head -5)"
ok "10,000 meshed connections held at once by one process, each live; descriptors back after ($out)"

# --- the application at EMFILE ------------------------------------------------
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
tport=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$tport]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$tport" "$TMP/server.fds" \
    > "$TMP/tserver.log" 2>&1 <<'PY' &
import os, resource, socket, sys, threading, time
port, fdfile = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.2", port))
ls.listen(256)
resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
def serve(c):
    with c:
        while (d := c.recv(4096)):
            c.sendall(d)
while True:
    try:
        c, _ = ls.accept()
    except OSError as e:                # EMFILE: the program's own business
        print("accept:", e, flush=True)
        time.sleep(0.05)
        continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
server=$!
PIDS+=($server)
wait_port 127.0.0.2 "$tport"

cat > "$TMP/emfile.py" <<'PY'
import errno, os, resource, socket, subprocess, sys, time
port, tport = int(sys.argv[1]), int(sys.argv[2])
def fds():
    return len(os.listdir("/proc/self/fd"))
def fill(service, p, blocking):
    """Connects until the descriptor limit says no; returns what it holds."""
    held = []
    while True:
        try:
            s = socket.socket()
        except OSError as e:
            assert e.errno == errno.EMFILE, e
            # At its limit, the program gets no number past it from dup
            # either (the shim's raise is room for the shim's own).
            try:
                os.dup(0)
                raise SystemExit("dup() at the limit gave a descriptor")
            except OSError as e:
                assert e.errno == errno.EMFILE, e
            return held
        # Never a number at or past the program's limit: select() users
        # would overflow their fd_set (1024) where they got EMFILE before.
        assert s.fileno() < limit, "socket() gave %d, the program's limit is %d" % (s.fileno(), limit)
        try:
            if blocking:
                s.settimeout(5)
                s.connect((service, p))
            else:
                s.setblocking(False)
                r = s.connect_ex((service, p))
                if r in (errno.EMFILE, errno.ENFILE):   # no descriptor for the engine's part
                    s.close()
                    return held
                assert r in (0, errno.EINPROGRESS), os.strerror(r)
            held.append(s)
        except OSError as e:
            assert e.errno in (errno.EMFILE, errno.ECONNRESET, errno.ENFILE), e
            s.close()
            return held
        if len(held) > 1000:
            raise SystemExit("no EMFILE after 1000 connections")
# One connection to each first: the shim's own descriptors (the engine's
# epoll and eventfd, started by the first mTLS connection) are in the base.
before = fds()
for service, p in (("orders", port), ("secure", tport)):
    c = socket.create_connection((service, p), timeout=5)
    c.sendall(b"ok")
    assert c.recv(2) == b"ok"
    c.close()
for _ in range(50):                     # the relay's teardown is the engine's
    if fds() <= before + 2:
        break
    time.sleep(0.1)
base = fds()
limit = base + 30                       # under what the server (its limit 48) holds
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
for service, p in (("orders", port), ("secure", tport)):
    for blocking in (True, False):
        held = fill(service, p, blocking)
        assert held, "no connection at all before EMFILE"
        for s in held:
            s.close()
        # Descriptors free again: a non-blocking connect (the engine's path)
        # and a blocking one work, and nothing was left behind.
        for _ in range(3):
            c = socket.create_connection((service, p), timeout=5)
            c.sendall(b"ok")
            assert c.recv(2) == b"ok"
            c.close()
        for _ in range(50):
            if fds() <= base:
                break
            time.sleep(0.1)
        assert fds() <= base, "%s blocking=%s: %d descriptors, was %d" % (service, blocking, fds(), base)
        print("%s %s: %d connections before EMFILE, descriptors back to %d" %
              (service, "blocking" if blocking else "non-blocking", len(held), fds()))
# With mTLS connections open (the shim's descriptors above the program's
# limit), the limit in force is still the program's own: getrlimit says so,
# and every way of starting a program passes it on (fork, then exec;
# subprocess, which uses vfork; posix_spawn).
held = [socket.create_connection(("secure", tport), timeout=5) for _ in range(4)]
soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
assert soft == limit, "getrlimit says %d with mTLS connections open, the program set %d" % (soft, limit)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.dup2(w, 1)
    os.execvp("sh", ["sh", "-c", "ulimit -Sn"])
os.close(w)
forked = int(os.read(r, 100))
os.close(r)
os.waitpid(pid, 0)
spawned = int(subprocess.run(["sh", "-c", "ulimit -Sn"], capture_output=True, check=True).stdout)
r, w = os.pipe()
pid = os.posix_spawnp("sh", ["sh", "-c", "ulimit -Sn"], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
os.close(w)
posix = int(os.read(r, 100))
os.close(r)
os.waitpid(pid, 0)
for how, got in (("fork+exec", forked), ("subprocess", spawned), ("posix_spawn", posix)):
    assert got == limit, "a child started by %s got a soft limit of %d, the program's is %d" % (how, got, limit)
print("children: fork+exec %d, subprocess %d, posix_spawn %d, the program's %d" % (forked, spawned, posix, limit))
for s in held:
    s.close()
PY
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" \
    "[service:secure]" "endpoints = 127.0.0.2:$tport" "tls = mtls"
out=$(MESHIM_CONFIG=$TMP/client.ini shimmed python3 "$TMP/emfile.py" "$port" "$tport" 2> "$TMP/emfile.err") ||
    fail "at EMFILE: $out $(grep -v '^meshim\[' "$TMP/emfile.err" | tail -5)"
ok "the application at EMFILE (plain and mTLS, blocking and not): errors, no crash, no leak, the engine still works: $(echo "$out" | tr '\n' ';')"
# The shim's descriptors are not the program's: a relayed mTLS connection
# holds two more (its real socket, the engine's end of the pair), and the
# shim keeps them above the program's limit. So the program reaches EMFILE
# after about as many mTLS connections as plain ones (before: a third).
echo "$out" | grep -q '^children: ' || fail "no check of the children's limit: $out"
plain=$(echo "$out" | awk '$1 == "orders" {n += $3} END {print n}')
mtls=$(echo "$out" | awk '$1 == "secure" {n += $3} END {print n}')
[ "$((mtls * 10))" -ge "$((plain * 9))" ] ||
    fail "under the same limit: $plain plain connections, only $mtls mTLS ones: the shim's descriptors came out of the program's"
ok "under the same descriptor limit, $mtls mTLS connections against $plain plain: the shim's descriptors are its own"

# The server at its limit of 48: 60 clients at once, then one more later.
python3 - "$tport" "$C" <<'PY' || fail "a meshed server at EMFILE: $(tail -3 "$TMP/tserver.log")"
import socket, ssl, sys, time
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=pki + "/ca.pem")
ctx.load_cert_chain(pki + "/web.pem", pki + "/web.key")
ctx.check_hostname = False
held = []
for _ in range(60):
    try:
        held.append(ctx.wrap_socket(socket.create_connection(("127.0.0.2", port), timeout=5)))
    except OSError:
        pass
for s in held:
    s.close()
for _ in range(50):                    # the server serves again
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.2", port), timeout=5))
        s.sendall(b"hi")
        if s.recv(2) == b"hi":
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit("the server did not serve again")
PY
kill -0 "$server" || fail "the server died at EMFILE"
ok "a meshed mTLS server held at 48 descriptors, 60 clients at once: it lives, and serves again after"

# --- a fresh client with a few descriptors free: never in the clear ----------
# A non-blocking connect that the engine cannot take (no descriptor for its
# placeholder, or for its thread: the first mTLS connect of the process)
# used to go on unobserved, plain: the application then wrote its request in
# the clear to a service that wants mTLS. Each run is a new process that
# leaves itself k more descriptors, k = 0..15; the endpoint records the first
# byte of every connection it gets: a TLS record's (0x16), or nothing.
rport=$(free_port)
python3 - "$rport" "$TMP/firstbytes" > "$TMP/recorder.log" 2>&1 <<'PY' &
import asyncio, sys
async def record(r, w):
    try:
        first = await asyncio.wait_for(r.read(1), 5)
    except (asyncio.TimeoutError, OSError):
        first = b""
    with open(sys.argv[2], "a") as f:
        f.write(first.hex() + "\n")
    w.close()
async def main():
    srv = await asyncio.start_server(record, "127.0.0.2", int(sys.argv[1]))
    await srv.serve_forever()
asyncio.run(main())
PY
PIDS+=($!)
wait_port 127.0.0.2 "$rport"
: > "$TMP/firstbytes"
tls_ini "$TMP/fresh.ini" web "[service:recorded]" "endpoints = 127.0.0.2:$rport" "tls = mtls" "retries = 0"
cat > "$TMP/fresh.py" <<'PY'
import errno, os, resource, select, socket, sys
k = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE,
                   (len(os.listdir("/proc/self/fd")) + k, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
try:
    s = socket.socket()
    s.setblocking(False)
    r = s.connect_ex(("recorded", int(sys.argv[1])))
except OSError as e:
    r = e.errno
if r in (0, errno.EINPROGRESS) and select.select([], [s], [], 10)[1] and \
        s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
    try:
        s.send(b"GET /secret HTTP/1.0\r\n\r\n")
        print(k, "sent")
    except OSError as e:
        print(k, "send failed:", e)
else:
    print(k, "connect failed:", os.strerror(r) if r not in (0, errno.EINPROGRESS) else "SO_ERROR")
PY
for k in $(seq 0 15); do
    MESHIM_CONFIG=$TMP/fresh.ini shimmed python3 "$TMP/fresh.py" "$rport" "$k" >> "$TMP/fresh.out" 2>> "$TMP/fresh.err" ||
        fail "the client with $k descriptors free: $(tail -3 "$TMP/fresh.err")"
done
# Every run's connection had its bytes or its end before this one (the runs
# exited), and the recorder takes them in order: once it has the last byte,
# it has them all.
python3 -c 'import socket, sys; socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=5).sendall(b"Z")' "$rport"
wait_until 'grep -q "^5a$" "$TMP/firstbytes"' || fail "the recorder did not record its last connection"
grep -v '^16$\|^5a$\|^$' "$TMP/firstbytes" | grep -q . &&
    fail "bytes other than TLS reached the mTLS service's endpoint: $(sort "$TMP/firstbytes" | uniq -c | tr '\n' ' '); client: $(tr '\n' ';' < "$TMP/fresh.out")"
grep -q '^16$' "$TMP/firstbytes" || fail "no run got as far as a handshake: $(tr '\n' ';' < "$TMP/fresh.out")"
ok "a fresh mTLS client with 0..15 descriptors free: each connect failed or began TLS ($(grep -c '^16$' "$TMP/firstbytes") began with a ClientHello, $(grep -c '^$' "$TMP/firstbytes") ended before a byte), never the request in the clear"

# --- a fresh mTLS client whose first connect finds no descriptor free ------
# Loading the TLS module, reading the identity and making the stats file
# each need a descriptor. At the program's limit they fail; that is the
# moment's state, not the files': the connect fails as the kernel's calls
# do there (EMFILE), the first connect with descriptors free loads the
# module and the identity and works, and the stats file follows within a
# second (before: ECONNREFUSED, and mTLS and stats gone for the process's
# life).
cat > "$TMP/short.py" <<'PY'
import errno, os, socket, sys, time
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    assert e.errno == errno.EMFILE, e
os.close(held.pop())                    # one: the program's socket
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("secure", int(sys.argv[1])))
    sys.exit("connected with no descriptor free for the shim")
except OSError as e:
    assert e.errno == errno.EMFILE, "the connect at the limit failed with %r, not EMFILE" % e
s.close()
for fd in held[:16]:
    os.close(fd)
c = socket.create_connection(("secure", int(sys.argv[1])), timeout=5)
c.sendall(b"hi")
assert c.recv(2) == b"hi"
c.close()
# The stats file is tried again a second after it failed, by the next
# connection that counts.
stats = os.path.join(os.environ["MESHIM_STATS_DIR"], "%d.stats" % os.getpid())
deadline = time.monotonic() + 10
while not os.path.exists(stats) and time.monotonic() < deadline:
    time.sleep(0.25)
    socket.create_connection(("secure", int(sys.argv[1])), timeout=5).close()
assert os.path.exists(stats), "no stats file once descriptors were free: " + stats
print("EMFILE at the limit; then connected, stats written")
PY
out=$(MESHIM_CONFIG=$TMP/client.ini shimmed prlimit --nofile=64: python3 "$TMP/short.py" "$tport" \
      2> "$TMP/short.err") || fail "a first mTLS connect at the limit: $out $(cat "$TMP/short.err")"
grep -q "no descriptor free: no usable mTLS identity" "$TMP/short.err" ||
    fail "the connect at the limit did not say why: $(cat "$TMP/short.err")"
grep -q "keeps no stats" "$TMP/short.err" && fail "the stats file was given up for good: $(cat "$TMP/short.err")"
ok "a fresh mTLS client whose first connect finds no descriptor free: EMFILE, then the next connect loads the TLS module and the identity and works, and its stats file is made"
