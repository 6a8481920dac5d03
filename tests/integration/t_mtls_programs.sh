# More unmodified programs over transparent mTLS (t_mtls has the basics):
# - nginx as the mTLS *client*: unshimmed wrk → shimmed nginx (proxy_pass by
#   service name, one connection per request and pooled keep-alive; nginx
#   registers the socket with epoll before it connects) → shimmed nginx on
#   a strict port;
# - the shimmed client against an unshimmed nginx with ssl_verify_client on,
#   and the client's certificate rotated under a running client loop: every
#   request succeeds, new connections present the new serial (nginx logs it);
# - python3 asyncio server and client, the server speaking first, half-close
#   both ways (the client's EOF reaches the server, which answers after it);
#   select, MSG_PEEK, FIONREAD, epoll one-shot, readv/writev, sendmsg/recvmsg
#   and splice on a relayed descriptor;
# - a forking server (socketserver.ForkingTCPServer): children serve relayed
#   connections; children that exit() with the connection open, and bash's
#   subshells, log nothing (one access-log line per connection, the
#   parent's); a client's fork child that exit()s leaves its parent's
#   connection working; TCP Fast Open (sendto/sendmsg with MSG_FASTOPEN) to
#   the service is meshed like connect();
# - mTLS in a mount namespace without /proc (the TLS module's other way in);
# - node, which carries its own OpenSSL, using both its TLS and the mesh's.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

# --- nginx as the mTLS client (proxy_pass), under wrk ----------------------
up=$(free_port)
tls_ini "$TMP/up.ini" orders "[inbound:$up]" "tls = strict" "allow = spiffe://test.mesh/ns/prod/**"
start_nginx up "
    log_format n '\$request_uri';
    server {
        listen 127.0.0.2:$up;
        access_log $TMP/up/access.log n;
        location / { return 200 'upstream-ok\n'; }
    }" LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/up.ini"
wait_port 127.0.0.2 "$up"

front=$(free_port)
tls_ini "$TMP/front.ini" web "[service:orders]" "endpoints = 127.0.0.2:$up" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders"
start_nginx front "
    upstream pooled { server orders:$up; keepalive 8; }
    server {
        listen 127.0.0.1:$front;
        location /each/ { proxy_pass http://orders:$up; }
        location /pooled/ {
            proxy_pass http://pooled;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
        }
    }" LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/front.ini"
wait_port 127.0.0.1 "$front"
out=$(curl -sS --max-time 5 "http://127.0.0.1:$front/each/x" 2>&1)
[ "$out" = "upstream-ok" ] || fail "nginx proxy_pass over mTLS: $out; $(cat "$TMP/front/error.log")"
summary=""
for path in each pooled; do
    wrk -t1 -c8 -d2s "http://127.0.0.1:$front/$path/" > "$TMP/wrk-$path.out" 2>&1 \
        || fail "wrk: $(cat "$TMP/wrk-$path.out")"
    n=$(awk '/requests in/ {print $1}' "$TMP/wrk-$path.out")
    [ "${n:-0}" -ge 100 ] || fail "wrk → nginx → mTLS ($path): only ${n:-0} requests: $(cat "$TMP/wrk-$path.out")"
    grep -q "Non-2xx\|Socket errors" "$TMP/wrk-$path.out" \
        && fail "wrk → nginx → mTLS ($path): errors: $(cat "$TMP/wrk-$path.out"; tail -3 "$TMP/front/error.log")"
    served=$(grep -c "^/$path/" "$TMP/up/access.log")
    # wrk counts the requests it finished; nginx may have a few more in flight at the end
    [ "$served" -ge "$n" ] || fail "$path: wrk got $n answers, the upstream served $served"
    summary="$summary $path $n,"
done
grep -q "\[error\]" "$TMP/front/error.log" && fail "front nginx errors: $(grep "\[error\]" "$TMP/front/error.log" | head -3)"
ok "nginx as the mTLS client (proxy_pass by name, epoll registration before connect) under wrk, no error:${summary%,} requests"

# --- the shimmed client against nginx with ssl_verify_client on; the client's
#     certificate rotated under a running client loop --------------------------
vp=$(free_port)
start_nginx verify "
    log_format v '\$ssl_client_serial \$ssl_client_verify';
    server {
        listen 127.0.0.6:$vp ssl;
        ssl_certificate $C/orders.pem;
        ssl_certificate_key $C/orders.key;
        ssl_client_certificate $C/ca.pem;
        ssl_verify_client on;
        access_log $TMP/verify/access.log v;
        location / { return 200 'verified \$ssl_client_s_dn\n'; }
    }"
wait_port 127.0.0.6 "$vp"
cp "$C/web.pem" "$TMP/me.pem"; cp "$C/web.key" "$TMP/me.key"
printf '[tls]\ncert = %s\nkey = %s\nca = %s\nreload_interval = 200ms\n[service:secure]\nendpoints = 127.0.0.6:%s\ntls = mtls\nidentity = spiffe://test.mesh/ns/prod/sa/orders\n' \
    "$TMP/me.pem" "$TMP/me.key" "$C/ca.pem" "$vp" > "$TMP/me.ini"
# The loop: one connection per request until told to stop (at most 60 s or
# 3000 requests); prints how many succeeded and exits 1 on the first failure.
MESHIM_LOG_LEVEL=info MESHIM_CONFIG=$TMP/me.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 - "$vp" "$TMP/stop" > "$TMP/loop.out" 2> "$TMP/loop.err" <<'PY' &
import os, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
end, n = time.time() + 60, 0
while n < 3000 and time.time() < end and not os.path.exists(stop):
    s = socket.create_connection(("secure", port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    if not data.startswith(b"HTTP/1.1 200") or b"verified CN=web" not in data:
        print(n, "failed:", data[:200]); sys.exit(1)
    n += 1
print(n)
PY
loop_pid=$!
PIDS+=($loop_pid)
lines() { wc -l < "$TMP/verify/access.log" 2>/dev/null || echo 0; }
for _ in $(seq 1 100); do [ "$(lines)" -ge 20 ] && break; sleep 0.1; done
[ "$(lines)" -ge 20 ] || fail "the client loop does not get through: $(cat "$TMP/loop.out" "$TMP/loop.err")"
old=$(openssl x509 -in "$C/web.pem" -noout -serial | cut -d= -f2)
leaf "$C" web2 "URI:spiffe://test.mesh/ns/prod/sa/web" ca || fail "new client certificate"
new=$(openssl x509 -in "$C/web2.pem" -noout -serial | cut -d= -f2)
# As a rotating agent does it: each file replaced at once (rename), key first.
cp "$C/web2.key" "$TMP/me.key.new"; mv "$TMP/me.key.new" "$TMP/me.key"
cp "$C/web2.pem" "$TMP/me.pem.new"; mv "$TMP/me.pem.new" "$TMP/me.pem"
for _ in $(seq 1 100); do grep -q "^$new " "$TMP/verify/access.log" && break; sleep 0.1; done
grep -q "^$new " "$TMP/verify/access.log" || fail "no connection with the new certificate $new: $(tail -3 "$TMP/loop.err")"
at=$(lines)
for _ in $(seq 1 100); do [ "$(lines)" -ge $((at + 20)) ] && break; sleep 0.1; done
touch "$TMP/stop"
wait "$loop_pid" || fail "the client loop failed during rotation: $(cat "$TMP/loop.out"; tail -5 "$TMP/loop.err")"
total=$(cat "$TMP/loop.out")
[ "$(lines)" -eq "$total" ] || fail "the loop made $total requests, nginx logged $(lines)"
grep -vq " SUCCESS$" "$TMP/verify/access.log" && fail "nginx did not verify every client: $(grep -v " SUCCESS$" "$TMP/verify/access.log" | head -3)"
# Serials in order: the old one, then only the new one once it appeared.
seq_ok=$(awk -v o="$old" -v n="$new" '$1 == n {seen = 1} $1 == o && seen {bad = 1} $1 != o && $1 != n {bad = 1}
    END {print (seen && !bad) ? "yes" : "no"}' "$TMP/verify/access.log")
[ "$seq_ok" = yes ] || fail "serials out of order around the rotation: $(uniq -c "$TMP/verify/access.log" | head)"
grep -q "identity reloaded from $TMP/me.pem" "$TMP/loop.err" || fail "no reload line: $(cat "$TMP/loop.err")"
after=$(awk -v n="$new" '$1 == n' "$TMP/verify/access.log" | wc -l)
ok "nginx ssl_verify_client on: $total requests from a shimmed loop, all verified; the client's certificate rotated under it ($old → $new, $after requests with the new one, none failed)"

# --- asyncio server and client; the server speaks first; half-close --------
ap=$(free_port)
tls_ini "$TMP/chat.ini" orders "[inbound:$ap]" "tls = strict"
MESHIM_CONFIG=$TMP/chat.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$ap" > "$TMP/chat.log" 2>&1 <<'PY' &
import asyncio, sys
async def serve(r, w):
    w.write(b"HELLO\n")                 # speaks first
    await w.drain()
    n = 0
    while line := await r.readline():   # until the client's EOF
        w.write(line.upper()); n += 1
    w.write(b"BYE %d\n" % n)            # answers after the client's half-close
    await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(serve, "127.0.0.2", int(sys.argv[1]))
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
PY
PIDS+=($!)
wait_port 127.0.0.2 "$ap"
tls_ini "$TMP/chat-cli.ini" web "[service:chat]" "endpoints = 127.0.0.2:$ap" "tls = mtls"
MESHIM_CONFIG=$TMP/chat-cli.ini shimmed python3 - "$ap" 2> "$TMP/chat-cli.err" <<'PY' || fail "asyncio over mTLS: $(cat "$TMP/chat-cli.err"; tail -3 "$TMP/chat.log")"
import asyncio, socket, sys
port = int(sys.argv[1])
async def one(i):
    r, w = await asyncio.wait_for(asyncio.open_connection("chat", port), 10)
    assert await asyncio.wait_for(r.readline(), 10) == b"HELLO\n"
    for k in range(3):
        w.write(b"line %d of %d\n" % (k, i))
    w.write_eof()                       # half-close: close_notify, then the answer
    rest = await asyncio.wait_for(r.read(), 10)
    w.close()
    assert rest == b"".join(b"LINE %d OF %d\n" % (k, i) for k in range(3)) + b"BYE 3\n", rest
async def main():
    await asyncio.gather(*[one(i) for i in range(20)])
asyncio.run(main())
# blocking: the banner arrives before the client sends anything
s = socket.create_connection(("chat", port), timeout=10)
assert s.recv(100) == b"HELLO\n"
s.sendall(b"x\n")
s.shutdown(socket.SHUT_WR)
data = b""
while d := s.recv(100):
    data += d
assert data == b"X\nBYE 1\n", data
PY
ok "asyncio server and client over mTLS: the server speaks first, 20 concurrent clients and a blocking one half-close and get the answer sent after their EOF"

# The other socket calls on a relayed descriptor: select, MSG_PEEK, epoll
# one-shot, writev/readv, sendmsg/recvmsg, splice both ways, FIONREAD.
MESHIM_CONFIG=$TMP/chat-cli.ini shimmed python3 - "$ap" 2> "$TMP/calls.err" <<'PY' || fail "socket calls over mTLS: $(cat "$TMP/calls.err")"
import fcntl, os, select, socket, struct, termios
port = int(__import__("sys").argv[1])
s = socket.create_connection(("chat", port), timeout=10)
fd = s.fileno()
assert select.select([s], [], [], 10)[0], "select: the banner never made it readable"
assert s.recv(6, socket.MSG_PEEK) == b"HELLO\n"
assert struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0] == 6
assert s.recv(6) == b"HELLO\n"
ep = select.epoll()
ep.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
def answer(read, want):
    got = b""
    while len(got) < len(want):
        assert ep.poll(10), "no answer for %r" % want
        got += read()
        ep.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
    assert got == want, (got, want)
os.writev(fd, [b"write", b"v\n"])
assert ep.poll(10)
assert not ep.poll(0.2), "one-shot fired twice"
buf = bytearray(7)
assert os.readv(fd, [buf]) == 7 and buf == b"WRITEV\n", buf
ep.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
s.sendmsg([b"send", b"msg\n"])
answer(lambda: s.recvmsg(100)[0], b"SENDMSG\n")
r, w = os.pipe()
os.write(w, b"spliced\n")
assert os.splice(r, fd, 8) == 8
pr, pw = os.pipe()
answer(lambda: os.read(pr, 100) if os.splice(fd, pw, 100) else b"", b"SPLICED\n")
s.shutdown(socket.SHUT_WR)
rest = b""
while d := s.recv(100):
    rest += d
assert rest == b"BYE 3\n", rest
PY
ok "on a relayed descriptor: select, MSG_PEEK, FIONREAD, epoll one-shot, writev/readv, sendmsg/recvmsg, splice both ways, shutdown"

# --- a forking server -------------------------------------------------------
fp=$(free_port)
tls_ini "$TMP/fork.ini" orders "[inbound:$fp]" "tls = strict"
MESHIM_CONFIG=$TMP/fork.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$fp" > "$TMP/fork.log" 2>&1 <<'PY' &
import os, socketserver, sys
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        self.wfile.write(b"%d %s" % (os.getpid(), line.upper()))
class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
Server(("127.0.0.2", int(sys.argv[1])), Echo).serve_forever()
PY
fork_pid=$!
PIDS+=($fork_pid)
wait_port 127.0.0.2 "$fp"
tls_ini "$TMP/fork-cli.ini" web "[service:forky]" "endpoints = 127.0.0.2:$fp" "tls = mtls"
MESHIM_CONFIG=$TMP/fork-cli.ini shimmed python3 - "$fp" "$fork_pid" 2> "$TMP/fork-cli.err" <<'PY' || fail "forking server over mTLS: $(cat "$TMP/fork-cli.err"; tail -3 "$TMP/fork.log")"
import socket, sys
port, parent = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("forky", port), timeout=10) for _ in range(10)]
pids = set()
for i, s in enumerate(socks):       # ten children at once, then each answers
    s.sendall(b"hello %d\n" % i)
for i, s in enumerate(socks):
    data = b""
    while d := s.recv(100):
        data += d
    pid, text = data.split(b" ", 1)
    assert text == b"HELLO %d\n" % i, data
    pids.add(int(pid))
    s.close()
assert parent not in pids and len(pids) == 10, pids
PY
ok "ForkingTCPServer over mTLS: 10 concurrent connections each served by its own child"

# A child that exits normally (exit(), destructors run) leaves its parent's
# relayed connections alone: the relays belong to the parent's engine, and
# the child's copy of their TLS state must never write (a close_notify from
# it would end the parent's connection).
MESHIM_CONFIG=$TMP/fork-cli.ini shimmed python3 - "$fp" > "$TMP/fork-exit.err" 2>&1 <<'PY' || fail "a fork child's exit and its parent's connection: $(cat "$TMP/fork-exit.err")"
import os, socket, sys
s = socket.create_connection(("forky", int(sys.argv[1])), timeout=10)
pid = os.fork()
if pid == 0:
    sys.exit(0)                 # exit(): the library's destructor runs in the child
_, status = os.waitpid(pid, 0)
assert status == 0, status
s.sendall(b"after the child\n")
data = b""
while d := s.recv(100):
    data += d
assert data.split(b" ", 1)[1] == b"AFTER THE CHILD\n", data
PY
ok "a fork child that exit()s leaves its parent's mTLS connection working"

# TCP Fast Open: sendto()/sendmsg() with MSG_FASTOPEN connect by themselves.
# To the service's name (its VIP) and to its `addresses` IP they are meshed
# like connect(): over mTLS to the strict server, which answers. Before, the
# data went straight to the address: refused at the VIP, and in the clear to
# the real IP. Blocking, and non-blocking (EINPROGRESS, as Fast Open answers
# without a cookie; the data follows once the socket is writable).
tls_ini "$TMP/fastopen.ini" web "[service:forky]" "endpoints = 127.0.0.2:$fp" "addresses = 127.0.0.2:$fp" "tls = mtls"
MESHIM_CONFIG=$TMP/fastopen.ini shimmed python3 - "$fp" > "$TMP/fastopen.out" 2> "$TMP/fastopen.err" <<'PY' ||
import errno, select, socket, sys
port = int(sys.argv[1])
def answer(s):
    data = b""
    while d := s.recv(100):
        data += d
    s.close()
    return data.split(b" ", 1)[1]
for host in ("forky", "127.0.0.2"):
    s = socket.socket()
    s.sendto(b"fast open\n", socket.MSG_FASTOPEN, (host, port))
    assert answer(s) == b"FAST OPEN\n", host
    s = socket.socket()
    s.sendmsg([b"fast ", b"msg\n"], [], socket.MSG_FASTOPEN, (host, port))
    assert answer(s) == b"FAST MSG\n", host
    s = socket.socket()
    s.setblocking(False)
    try:
        s.sendto(b"fast nb\n", socket.MSG_FASTOPEN, (host, port))
    except BlockingIOError as e:
        assert e.errno == errno.EINPROGRESS, e
        assert select.select([], [s], [], 10)[1] and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        s.send(b"fast nb\n")
    s.setblocking(True)
    assert answer(s) == b"FAST NB\n", host
    print(host, "ok")
PY
    fail "TCP Fast Open to an mTLS service: $(cat "$TMP/fastopen.out" "$TMP/fastopen.err"; tail -3 "$TMP/fork.log")"
ok "TCP Fast Open (sendto, sendmsg; blocking and not) to the service's name and to its addresses IP: meshed over mTLS"

# A connection is logged once, by the process that made or accepted it,
# however many fork children hold it and exit with it open: a server that
# forks a child per connection which exit()s without closing it (as
# postgres' backends do), and bash's subshells after `exec 3<>/dev/tcp`.
# Each child used to write a second line ("abandoned", its relay being
# the parent's).
pp=$(free_port)
tls_ini "$TMP/forkexit.ini" orders "[inbound:$pp]" "tls = strict"
ini_access_log "$TMP/forkexit.ini" "$TMP/forkexit-srv.access"
MESHIM_CONFIG=$TMP/forkexit.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$pp" > "$TMP/forkexit.log" 2>&1 <<'PY' &
import os, signal, socket, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)      # children are reaped by the kernel
ls = socket.create_server(("127.0.0.2", int(sys.argv[1])), backlog=64)
while True:
    c, _ = ls.accept()
    if os.fork() == 0:
        ls.close()
        c.sendall(b"%d %s" % (os.getpid(), c.recv(100).upper()))
        c.shutdown(socket.SHUT_WR)
        c.recv(100)             # the client's end
        c.detach()              # python would close c at its exit; postgres does not
        sys.exit(0)             # exit() with c still open: destructors run
    c.close()
PY
forkexit_pid=$!
PIDS+=($forkexit_pid)
wait_port 127.0.0.2 "$pp"
tls_ini "$TMP/forkexit-cli.ini" web "[service:forkexit]" "endpoints = 127.0.0.2:$pp" "tls = mtls"
ini_access_log "$TMP/forkexit-cli.ini" "$TMP/forkexit-cli.access"
for i in 1 2 3; do
    out=$(MESHIM_CONFIG=$TMP/forkexit-cli.ini shimmed bash -c '
        exec 3<>/dev/tcp/forkexit/'"$pp"'
        (:)                     # a subshell: a fork child that exits
        x=$(echo sub)           # and another
        echo "hello '"$i"'" >&3
        read -r pid text <&3
        exec 3<&-
        echo "$text"' 2> "$TMP/forkexit-cli.err") || fail "bash over mTLS to a forking server: $(cat "$TMP/forkexit-cli.err")"
    [ "$out" = "HELLO $i" ] || fail "bash over mTLS to a forking server: '$out'; $(cat "$TMP/forkexit-cli.err" "$TMP/forkexit.log")"
done
# (wait_port's probe, closed before its first byte, is a port check: an
# "abandoned" line flagged DC, left out.)
wait_until '[ "$(grep -c "\"pid\":$forkexit_pid,.*\"result\":\"ok\"" "$TMP/forkexit-srv.access")" = 3 ]' ||
    fail "the forking server's parent did not log its 3 relayed connections: $(cat "$TMP/forkexit-srv.access" "$TMP/forkexit.log" 2>&1)"
n=$(grep -vc '"flags":"DC"' "$TMP/forkexit-srv.access")
[ "$n" = 3 ] || fail "the server's access log has $n lines for 3 connections (its children logged them again): $(cat "$TMP/forkexit-srv.access")"
n=$(wc -l < "$TMP/forkexit-cli.access")
[ "$n" = 3 ] || fail "the clients' access log has $n lines for 3 connections (bash's subshells logged them again): $(cat "$TMP/forkexit-cli.access")"
grep -v '"result":"ok"' "$TMP/forkexit-srv.access" "$TMP/forkexit-cli.access" | grep -v '"result":"abandoned","flags":"DC"' &&
    fail "a connection not logged ok (above)"
ok "one access-log line per connection: a forking server's children and bash's subshells exit() with it open and log nothing"

# Without /proc (some containers and chroots) the TLS module cannot be opened
# through /proc/self/fd: it comes from a private file, removed at once.
if under_asan; then
    echo "skip: the ASan runtime needs /proc itself (the /proc-less case runs in the plain build)"
elif command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
    mkdir -p "$TMP/tmpdir"
    unshare -m sh -c 'umount -l /proc && exec "$@"' sh \
        env TMPDIR="$TMP/tmpdir" MESHIM_CONFIG="$TMP/fork-cli.ini" LD_PRELOAD="$MESHIM_PRELOAD" python3 -c "
import os, socket
assert not os.path.exists('/proc/self')
s = socket.create_connection(('forky', $fp), timeout=10)
s.sendall(b'no proc\n')
assert s.recv(100).split(b' ', 1)[1] == b'NO PROC\n'
" 2> "$TMP/noproc.err" || fail "mTLS without /proc: $(cat "$TMP/noproc.err")"
    [ -z "$(ls -A "$TMP/tmpdir")" ] || fail "the TLS module's file was left behind: $(ls "$TMP/tmpdir")"
    ok "without /proc: the TLS module loaded from a private file (removed at once), mTLS works"
else
    echo "skip: cannot make a mount namespace here (the /proc-less case)"
fi

# --- node: its own OpenSSL beside the mesh's --------------------------------
if under_asan; then
    echo "skip: node under the ASan runtime (runs in the plain build)"
else
    np=$(free_port) sp=$(free_port)
    tls_ini "$TMP/node-srv.ini" orders "[inbound:$np]" "tls = strict"
    MESHIM_CONFIG=$TMP/node-srv.ini LD_PRELOAD="$MESHIM_PRELOAD" \
        python3 -m http.server --bind 127.0.0.2 --directory "$C" "$np" > "$TMP/node-srv.log" 2>&1 &
    PIDS+=($!)
    openssl s_server -accept "127.0.0.4:$sp" -cert "$C/orders.pem" -key "$C/orders.key" -www \
        > "$TMP/node-s_server.log" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.2 "$np"; wait_port 127.0.0.4 "$sp"
    tls_ini "$TMP/node.ini" web "[service:orders]" "endpoints = 127.0.0.2:$np" "tls = mtls"
    MESHIM_CONFIG=$TMP/node.ini shimmed node - "$np" "$sp" "$C/ca.pem" > "$TMP/node.out" 2>&1 <<'JS' \
        || fail "node: $(cat "$TMP/node.out")"
const http = require('http'), https = require('https'), fs = require('fs');
const [np, sp, ca] = process.argv.slice(2);
const get = (mod, opts) => new Promise((ok, ko) => {
    mod.get(opts, res => { let b = ''; res.on('data', d => b += d); res.on('end', () => ok(b)); })
       .on('error', ko).setTimeout(10000, () => ko(new Error('timeout')));
});
(async () => {
    // node's own TLS (its OpenSSL) to an unshimmed TLS server ...
    const own = await get(https, { host: '127.0.0.4', port: sp, path: '/', servername: 'orders',
                                   ca: fs.readFileSync(ca), agent: false });
    if (!own.includes('Ciphers supported')) throw new Error('s_server: ' + own.slice(0, 200));
    // ... and plain http that the mesh carries over mTLS, several at once
    const bodies = await Promise.all([1, 2, 3, 4, 5].map(() =>
        get(http, { host: 'orders', port: np, path: '/ca.pem', agent: false })));
    for (const b of bodies) if (b !== fs.readFileSync(ca, 'utf8')) throw new Error('body differs');
    console.log('node ok');
})().catch(e => { console.error(e); process.exit(1); });
JS
    grep -q "node ok" "$TMP/node.out" || fail "node: $(cat "$TMP/node.out")"
    ok "node: its own TLS to openssl s_server and mesh mTLS (5 at once) in one process"
fi
