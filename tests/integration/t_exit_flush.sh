# A program that ends without exit() — os._exit() in python3, the way
# multiprocessing's forked workers end, _exit() in a signal handler — has
# written bytes on an mTLS connection that the engine relays: they reach the
# peer whole, as the kernel sends what sits in a socket's buffer after a
# process ends (hook _exit/_Exit, mesh/relay.c relay_exit). A vfork
# child's _exit (subprocess whose exec failed) leaves the parent's relays
# alone: the parent goes on sending on its connection. A process ended by
# a signal at its default action (SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGALRM,
# SIGUSR1, SIGUSR2) gets the same (mesh/termsig.c), and still ends by it, as does node, whose own
# one-shot SIGTERM handler raises the signal again; a handler or SIG_IGN
# the program sets is its own, and it reads back what it set. A request
# written to a protocol = http service just before the end goes upstream
# first (mesh/http.c http_exit). What stdio still buffers for a relayed
# connection at exit() goes too (libc/stdio_exit.c).
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

# The sink (tests/helpers/sink.py): meshed, strict; one line per connection,
# "BYTES SHA256", in the order the connections end.
sink=$(free_port)
tls_ini "$TMP/sink.ini" orders "[inbound:$sink]" "tls = strict"
MESHIM_CONFIG=$TMP/sink.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 tests/helpers/sink.py 127.0.0.2 "$sink" \
    "$TMP/sink.out" > "$TMP/sink.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$sink"
tls_ini "$TMP/cli.ini" web "[service:sink]" "endpoints = 127.0.0.2:$sink" "tls = mtls"

# lines N: waits until the sink has written N lines.
lines() {
    wait_until "[ \$(wc -l < '$TMP/sink.out' 2>/dev/null || echo 0) -ge $1 ]" ||
        fail "the sink has $(wc -l < "$TMP/sink.out" 2>/dev/null) lines, not $1: $(cat "$TMP/sink.out" 2>/dev/null)"
}
# sent DATA-EXPR: "BYTES SHA256" of a python bytes expression.
sent() {
    python3 -c "import hashlib; d = $1; print(len(d), hashlib.sha256(d).hexdigest())"
}
client() {
    MESHIM_CONFIG=$TMP/cli.ini shimmed python3 -c "$1" 2> "$TMP/client.err" ||
        fail "client: $(cat "$TMP/client.err")"
}
# strict_server NAME 'PYTHON': a meshed python3 server on a strict port of
# 127.0.0.2 that runs PYTHON with `ls` listening; its port is left in
# $PORT, its pid in $SERVER_PID (and PIDS), its output in $TMP/NAME.log.
# Its clients name it NAME with $TMP/NAME-client.ini.
strict_server() {
    local name=$1
    PORT=$(free_port)
    tls_ini "$TMP/$name.ini" orders "[inbound:$PORT]" "tls = strict"
    MESHIM_CONFIG=$TMP/$name.ini shimmed python3 -c "
import os, signal, socket, threading, time
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.2', $PORT))
ls.listen(4)
$2" > "$TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=($!)
    wait_port 127.0.0.2 "$PORT"
    tls_ini "$TMP/$name-client.ini" web "[service:$name]" "endpoints = 127.0.0.2:$PORT" "tls = mtls"
}

# 1. os._exit right after sendall: 8 MB, then a small write (ended before
#    the relay has even begun), three times each.
big=$(sent "bytes(range(256)) * 32768")
small=$(sent "b'x' * 1000")
for i in 1 2 3; do
    client "
import os, socket
s = socket.create_connection(('sink', $sink))
s.sendall(bytes(range(256)) * 32768)
os._exit(0)"
    client "
import os, socket
s = socket.create_connection(('sink', $sink))
s.sendall(b'x' * 1000)
os._exit(0)"
done
lines 6
[ "$(grep -cx "$big" "$TMP/sink.out")" -eq 3 ] && [ "$(grep -cx "$small" "$TMP/sink.out")" -eq 3 ] ||
    fail "os._exit() after sendall: want 3 x '$big' and 3 x '$small', the sink got: $(cat "$TMP/sink.out")"
ok "os._exit() right after sendall: 3 x 8 MB and 3 x 1000 bytes arrived whole"

# 2. multiprocessing (fork): each worker connects, sends 256 KiB and
#    returns; multiprocessing ends it with os._exit.
: > "$TMP/sink.out"
part=$(sent "b'w' * 262144")
client "
import multiprocessing as mp, socket
def work(i):
    s = socket.create_connection(('sink', $sink))
    s.sendall(b'w' * 262144)
if __name__ == '__main__':
    mp.set_start_method('fork')
    ps = [mp.Process(target=work, args=(i,)) for i in range(4)]
    [p.start() for p in ps]
    [p.join() for p in ps]
    assert all(p.exitcode == 0 for p in ps), [p.exitcode for p in ps]"
lines 4
[ "$(grep -cx "$part" "$TMP/sink.out")" -eq 4 ] ||
    fail "4 multiprocessing workers: want 4 x '$part', the sink got: $(cat "$TMP/sink.out")"
ok "4 multiprocessing workers (ended by os._exit): each one's 256 KiB arrived"

# 3. _exit from a SIGTERM handler, mid-program.
: > "$TMP/sink.out"
MESHIM_CONFIG=$TMP/cli.ini shimmed python3 -c "
import os, signal, socket
signal.signal(signal.SIGTERM, lambda *a: os._exit(3))
s = socket.create_connection(('sink', $sink))
s.sendall(b'h' * 100000)
os.kill(os.getpid(), signal.SIGTERM)
signal.pause()" 2> "$TMP/client.err"
rc=$?
[ "$rc" -eq 3 ] || fail "the SIGTERM handler's os._exit(3): exit status $rc: $(cat "$TMP/client.err")"
lines 1
[ "$(cat "$TMP/sink.out")" = "$(sent "b'h' * 100000")" ] ||
    fail "_exit in a signal handler: the sink got $(cat "$TMP/sink.out")"
ok "_exit() from a SIGTERM handler: the 100000 bytes written before arrived"

# 4. A vfork child's _exit (python3's subprocess vforks; the exec fails, the
#    child calls _exit(255)) with a relayed connection open in the parent:
#    the parent's relay goes on, its later bytes arrive too.
: > "$TMP/sink.out"
client "
import socket, subprocess
s = socket.create_connection(('sink', $sink))
s.sendall(b'a' * 50000)
for i in range(3):
    try:
        subprocess.run(['$TMP/no-such-program'])
    except FileNotFoundError:
        pass
    else:
        raise SystemExit('the exec should have failed')
s.sendall(b'b' * 50000)
s.close()"
lines 1
[ "$(cat "$TMP/sink.out")" = "$(sent "b'a' * 50000 + b'b' * 50000")" ] ||
    fail "after 3 failed vfork+exec: the parent's connection got $(cat "$TMP/sink.out")"
ok "a vfork child's _exit leaves the parent's relay alone: all 100000 bytes arrived"

# 5. Killed by a signal left at its default action, right after sendall:
#    the 8 MB arrive whole, and the process still ends by the signal (exit
#    status 128 + N). python3 has its own SIGINT handler and ignores
#    SIGPIPE; the client puts back SIG_DFL first, as a C program has them.
for sig in TERM HUP INT PIPE ALRM USR1 USR2; do
    : > "$TMP/sink.out"
    MESHIM_CONFIG=$TMP/cli.ini shimmed python3 -c "
import os, signal, socket
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
s = socket.create_connection(('sink', $sink))
s.sendall(bytes(range(256)) * 32768)
os.kill(os.getpid(), signal.SIG$sig)
signal.pause()" 2> "$TMP/client.err"
    rc=$?
    want=$((128 + $(kill -l "$sig")))
    [ "$rc" -eq "$want" ] || fail "SIG$sig at its default action: exit status $rc, not $want: $(cat "$TMP/client.err")"
    lines 1
    [ "$(cat "$TMP/sink.out")" = "$big" ] ||
        fail "killed by SIG$sig right after sendall: want '$big', the sink got: $(cat "$TMP/sink.out")"
done
ok "SIGTERM, SIGHUP, SIGINT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2 at their default action right after sendall: 8 MB arrived whole each time, exit status 128 + N"

# 6. A server killed by SIGTERM while its main thread waits in accept() (in
#    the shim's hook: the kernel gives a process's signal to its main thread
#    first); a thread of it had just sent 32 MB to a meshed reader. The
#    reader takes its time (a pause after each read, not a wait for
#    anything), and 32 MB are more than the TCP buffers between the two
#    hold: the relay still holds bytes when the signal comes.
strict_server sender "
def send(c):
    c.sendall(bytes(range(256)) * 131072)
    os.kill(os.getpid(), signal.SIGTERM)
while True:
    c, _ = ls.accept()
    threading.Thread(target=send, args=(c,)).start()"
got=$(MESHIM_CONFIG=$TMP/sender-client.ini shimmed python3 -c "
import hashlib, socket, time
s = socket.create_connection(('sender', $PORT))
h, n = hashlib.sha256(), 0
while True:
    d = s.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
    time.sleep(0.001)
print(n, h.hexdigest())" 2> "$TMP/reader.err") || fail "reader: $(cat "$TMP/reader.err")"
wait "$SERVER_PID"
rc=$?
[ "$rc" -eq 143 ] || fail "the server killed by SIGTERM in accept(): exit status $rc: $(cat "$TMP/sender.log")"
huge=$(sent "bytes(range(256)) * 131072")
[ "$got" = "$huge" ] || fail "a server killed by SIGTERM while in accept(): want '$huge', the reader got '$got'"
ok "a server killed by SIGTERM while its main thread waits in accept(): its 32 MB arrived whole, exit status 143"

# 7. The program's own choices stand once a relay has started: what it
#    reads back of SIGTERM is SIG_DFL, not the shim's handler (libc's
#    signal() returns the old handler); a handler it sets runs and the
#    program goes on; SIG_IGN keeps it alive.
: > "$TMP/sink.out"
out=$(MESHIM_CONFIG=$TMP/cli.ini shimmed python3 -c "
import ctypes, os, signal, socket
libc = ctypes.CDLL(None)
libc.signal.restype = ctypes.c_void_p
libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
s = socket.create_connection(('sink', $sink))
s.sendall(b'c' * 1000)
print('dfl-read-back', libc.signal(signal.SIGTERM, None) or 0)
act = ctypes.create_string_buffer(256)
libc.sigaction(signal.SIGHUP, None, act)
print('sigaction-read-back', int.from_bytes(act.raw[:8], 'little'))
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append('handled'))
os.kill(os.getpid(), signal.SIGTERM)
print(got[0] if got else 'not-handled')
signal.signal(signal.SIGHUP, signal.SIG_IGN)
os.kill(os.getpid(), signal.SIGHUP)
s.sendall(b'd' * 1000)
s.close()
print('alive')" 2> "$TMP/client.err") || fail "the client with its own handlers: status $?: $(cat "$TMP/client.err")"
printf '%s\n' "$out" | grep -qx 'dfl-read-back 0' ||
    fail "signal(SIGTERM, SIG_DFL) after a relay started must return SIG_DFL (0), it returned: $out"
printf '%s\n' "$out" | grep -qx 'sigaction-read-back 0' ||
    fail "sigaction(SIGHUP, NULL, &old) after a relay started must read SIG_DFL (0): $out"
printf '%s\n' "$out" | grep -qx handled || fail "the program's own SIGTERM handler did not run: $out"
printf '%s\n' "$out" | grep -qx alive || fail "SIG_IGN on SIGHUP did not keep the program alive: $out"
lines 1
[ "$(cat "$TMP/sink.out")" = "$(sent "b'c' * 1000 + b'd' * 1000")" ] ||
    fail "the client with its own handlers: the sink got $(cat "$TMP/sink.out")"
ok "the program's own SIGTERM handler and SIG_IGN stand; it reads back SIG_DFL where the shim's handler is"

# 8. node: its own SIGTERM handler (set with SA_RESETHAND at start-up)
#    resets the terminal and raises SIGTERM again. The 8 MB written just
#    before arrive whole, and node ends by SIGTERM.
: > "$TMP/sink.out"
MESHIM_CONFIG=$TMP/cli.ini shimmed node -e "
const s = require('net').connect($sink, 'sink', () => {
  s.write(Buffer.alloc(8 << 20, 121), () => process.kill(process.pid, 'SIGTERM'));
});" 2> "$TMP/client.err"
rc=$?
[ "$rc" -eq 143 ] || fail "node killed by SIGTERM: exit status $rc: $(cat "$TMP/client.err")"
lines 1
[ "$(cat "$TMP/sink.out")" = "$(sent "b'y' * (8 << 20)")" ] ||
    fail "node killed by SIGTERM after writing 8 MB: the sink got $(cat "$TMP/sink.out")"
ok "node (its one-shot SIGTERM handler raises it again): the 8 MB written before SIGTERM arrived whole, exit status 143"

# The python3 of a fork child whose parent (PID in `parent`) exits at once:
# it waits (bounded) until it is reparented; and its verdict on a read,
# after a try: that prints 'end' or 'data' and what came.
orphaned="for _ in range(2000):
    if os.getppid() != parent:
        break
    time.sleep(0.01)"
judged="except socket.timeout:
    print('hung')
except OSError as e:
    print('end', e.errno)"

# 9. A forked child outlives its parent, which made the connection (a
#    program that connects, then daemonizes): the parent's end hands the
#    relay to a keeper process (mesh/relay.c relay_keep), and the child
#    goes on with the connection: what it sends after the parent is gone
#    arrives, and the server's answer reaches it. Both ways a parent ends
#    so: python3's fork and os._exit (_exit), and libc's daemon(), whose
#    parent ends inside libc (the shim does daemon's steps itself, so the
#    parent's end goes through the keeper too). Once the child closes the
#    connection, its access-log line is written and the keeper ends.
strict_server holder "
while True:
    c, _ = ls.accept()
    got = b''
    while d := c.recv(65536):
        got += d
        if got.endswith(b'\\n'):
            c.sendall(b'ACK %d\\n' % len(got))
    if got:
        with open('$TMP/holder.out', 'a') as f:
            f.write('%d\\n' % len(got))"
cp "$TMP/holder-client.ini" "$TMP/keeper.ini"
ini_access_log "$TMP/keeper.ini" "$TMP/keeper.access"
sed -i 's/^log_level = info/log_level = debug/' "$TMP/keeper.ini"     # the keeper's pid
: > "$TMP/holder.out"
# keeper_gone PID: the process has ended (gone, or a zombie not reaped yet).
keeper_gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
i=0
for how in "if os.fork() > 0:
    os._exit(0)
\$orphaned" "import ctypes
assert ctypes.CDLL(None).daemon(1, 1) == 0
\$orphaned"; do
    i=$((i + 1))
    how=${how//\$orphaned/$orphaned}
    out=$(MESHIM_CONFIG=$TMP/keeper.ini shimmed timeout 60 python3 -c "
import os, socket, time
s = socket.create_connection(('holder', $PORT))
s.sendall(b'p' * 1000)
parent = os.getpid()
$how
s.settimeout(20)
try:
    s.sendall(b'c' * 499 + b'\\n')
    d = s.recv(100)
    print('end' if d == b'' else 'data %r' % d[:60])
$judged
s.close()" 2> "$TMP/keeper$i.err")
    [ "$out" = "data b'ACK 1500\\n'" ] ||
        fail "case $i: a child's exchange on the connection its gone parent made: want the server's ACK 1500, got '$out': $(cat "$TMP/keeper$i.err")"
    wait_until "[ \$(wc -l < '$TMP/holder.out') -ge $i ]" || fail "case $i: the server never saw the connection end: $(cat "$TMP/holder.log")"
    [ "$(sed -n "${i}p" "$TMP/holder.out")" = 1500 ] ||
        fail "case $i: the parent's 1000 bytes and the child's 500: the server read $(sed -n "${i}p" "$TMP/holder.out")"
    keeper=$(sed -n 's/.*the relays of 1 connections go on in process \([0-9]*\)$/\1/p' "$TMP/keeper$i.err")
    [ -n "$keeper" ] || fail "case $i: no keeper was started: $(cat "$TMP/keeper$i.err")"
    wait_until "keeper_gone $keeper" || fail "case $i: the keeper $keeper still runs after the connection ended"
    wait_until "[ \$(grep -c '\"result\":\"ok\"' '$TMP/keeper.access') -ge $i ]" ||
        fail "case $i: the connection's access-log line: $(cat "$TMP/keeper.access" 2>&1)"
done
ok "a child that outlives the parent that connected (fork + os._exit, and daemon()): its exchange after the parent's end went through a keeper, which ended with the connection"

# 10. The same for a protocol = http service (the engine's HTTP proxy,
#     keep-alive): a child that outlives the parent that connected sends a
#     request on the inherited connection, and sees the connection's end,
#     not a wait without end.
hport=$(free_port)
python3 tests/helpers/http_backend.py 127.0.0.3 "$hport" b3 "$TMP/b3.log" > /dev/null 2>&1 &
PIDS+=($!)
wait_port 127.0.0.3 "$hport"
printf '[service:web]\nprotocol = http\nendpoints = 127.0.0.3:%s\n' "$hport" > "$TMP/http.ini"
out=$(MESHIM_CONFIG=$TMP/http.ini shimmed python3 -c "
import os, socket, time
s = socket.create_connection(('web', $hport))
s.sendall(b'GET /who HTTP/1.1\r\nHost: web\r\n\r\n')
first = b''                     # the whole answer: none of it is left for the child
while b'\r\n\r\n' not in first:
    first += s.recv(4096)
head, _, body = first.partition(b'\r\n\r\n')
length = [int(l.split(b':')[1]) for l in head.split(b'\r\n') if l.lower().startswith(b'content-length:')][0]
while len(body) < length:
    body += s.recv(4096)
parent = os.getpid()
if os.fork() > 0:
    os._exit(0 if b' 200 ' in head else 1)
$orphaned
s.settimeout(20)
try:
    s.sendall(b'GET /who HTTP/1.1\r\nHost: web\r\n\r\n')
    d = s.recv(4096)
    print('end' if d == b'' else 'data %r' % d[:60])
$judged" 2> "$TMP/client.err")
case "$out" in
end*) ;;
*) fail "protocol = http: a child's request on the connection its gone parent made: want its end, got '$out': $(cat "$TMP/client.err")" ;;
esac
ok "protocol = http: a child that outlives the parent that connected sees the connection end ($out)"

# 11. protocol = http: a request written just before the process ends goes
#     upstream first (mesh/http.c http_exit), as the kernel would send it
#     on a plain connection. bash writes one to /dev/tcp and exits at once
#     (the proxy has not even connected upstream yet); python3 is ended by
#     SIGTERM at its default action right after sendall. Before, bash's
#     requests never reached the backend (0 of 30 in three rounds).
for i in $(seq 1 10); do
    MESHIM_CONFIG=$TMP/http.ini shimmed bash -c \
        "exec 3<>/dev/tcp/web/$hport; printf 'GET /script$i HTTP/1.1\r\nHost: web\r\n\r\n' >&3; exit 0" ||
        fail "bash writing request $i failed"
done
for i in 1 2 3; do
    MESHIM_CONFIG=$TMP/http.ini shimmed python3 -c "
import os, signal, socket
s = socket.create_connection(('web', $hport))
s.sendall(b'GET /term$i HTTP/1.1\r\nHost: web\r\n\r\n')
os.kill(os.getpid(), signal.SIGTERM)" 2>> "$TMP/term.err"
    rc=$?
    [ $rc -eq 143 ] || fail "python3 ended by SIGTERM exited $rc, not 143: $(cat "$TMP/term.err")"
done
wait_until '[ "$(grep -c "GET /script[0-9]* \|GET /term[0-9] " "$TMP/b3.log")" -ge 13 ]' ||
    fail "of 10 scripts' and 3 SIGTERM'd requests, the backend got: $(grep -o "GET /[a-z]*[0-9]*" "$TMP/b3.log" | tr '\n' ' ')"
ok "protocol = http: requests written just before exit (bash /dev/tcp, 10 of 10) and before SIGTERM (3 of 3, status 143) reached the backend"

# 12. stdio: a program that writes to its connection through fdopen() and
#     returns from main without fclose() leaves its last buffer to exit()'s
#     flush, which glibc runs after every destructor: the shim's destructor
#     flushes such streams on relayed descriptors first (libc/stdio_exit.c),
#     or that buffer (992 of these 300000 bytes) went into an ended relay.
#     python3 calls libc's stdio through ctypes; sys.exit() is exit().
: > "$TMP/sink.out"
stdio_client() {
    MESHIM_CONFIG=$TMP/cli.ini shimmed timeout 60 python3 -c "
import ctypes, socket, sys, threading
libc = ctypes.CDLL(None)
libc.fdopen.restype = ctypes.c_void_p
libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
libc.fwrite.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
libc.flockfile.argtypes = [ctypes.c_void_p]
s = socket.create_connection(('sink', $sink))
f = libc.fdopen(s.detach(), b'w')
d = bytes(range(256)) * 1171 + b'x' * 224
assert libc.fwrite(d, 1, len(d), f) == len(d)
$1
sys.exit(0)" 2> "$TMP/client.err"
}
for i in 1 2 3; do
    stdio_client "" || fail "the stdio client exited $?: $(cat "$TMP/client.err")"
done
lines 3
[ "$(grep -cx "$(sent "bytes(range(256)) * 1171 + b'x' * 224")" "$TMP/sink.out")" -eq 3 ] ||
    fail "fwrite() then exit(): want 3 x 300000 bytes, the sink got: $(cat "$TMP/sink.out")"
# A stream another thread holds locked is left to exit()'s own flush
# (its buffer is lost as before): waiting for it would hang the exit.
stdio_client "
held = threading.Event()
threading.Thread(target=lambda: (libc.flockfile(f), held.set(), threading.Event().wait()), daemon=True).start()
held.wait()" || fail "exit() with another thread holding the stream's lock: status $? (124: it hung): $(cat "$TMP/client.err")"
ok "fwrite() through fdopen() then exit() without fclose(): 3 x 300000 bytes arrived whole; a stream another thread holds does not hang the exit"

# 13. exec: the engine ends with the image, while the new image keeps every
#     descriptor not marked close-on-exec. A program that connects and then
#     execs another with the connection (a shell's `exec`, `tcpclient`)
#     hands its relays to a keeper first (mesh/relay.c relay_keep_before_exec),
#     as at an exit with a child holding them: the new image's exchange goes
#     through, and what the old one wrote last arrives. Against the server
#     of case 9 (holder.out: the bytes of each connection at its end).
: > "$TMP/holder.out"
: > "$TMP/keeper.access"
n=0
# exec_case WHAT OUTPUT WANT ERRORS BYTES: the case's OUTPUT is WANT, the
# server read BYTES on its connection, and the keeper (its pid from the
# debug log in ERRORS) ended with it.
exec_case() {
    n=$((n + 1))
    [ "$2" = "$3" ] || fail "exec, $1: want '$3', got '$2': $(cat "$4")"
    wait_until "[ \$(wc -l < '$TMP/holder.out') -ge $n ]" || fail "exec, $1: the server never saw the connection end: $(cat "$4")"
    [ "$(sed -n "${n}p" "$TMP/holder.out")" = "$5" ] ||
        fail "exec, $1: want $5 bytes at the server, it read $(sed -n "${n}p" "$TMP/holder.out")"
    keeper=$(sed -n 's/.*the relays of 1 connections go on in process \([0-9]*\)$/\1/p' "$4" | tail -1)
    [ -n "$keeper" ] || fail "exec, $1: no keeper was started: $(cat "$4")"
    wait_until "keeper_gone $keeper" || fail "exec, $1: the keeper $keeper still runs after the connection ended"
}
# bash's exec of sh (execve): sh writes its 500 bytes on the descriptor
# bash opened, and head reads the answer.
out=$(MESHIM_CONFIG=$TMP/keeper.ini shimmed timeout 60 bash -c "
exec 3<>/dev/tcp/holder/$PORT
printf '%01000d' 0 >&3
exec sh -c 'printf \"%0499d\\n\" 0 >&3; head -c 9 <&3'" 2> "$TMP/exec1.err")
exec_case "bash, then sh" "$out" "ACK 1500" "$TMP/exec1.err" 1500
wait_until "[ \$(grep -c '\"result\":\"ok\"' '$TMP/keeper.access') -ge 1 ]" ||
    fail "exec: the connection's access-log line: $(cat "$TMP/keeper.access" 2>&1)"
# python3's os.execv (execv) with the descriptor inheritable.
exec_python() {
    MESHIM_CONFIG=$TMP/keeper.ini shimmed timeout 60 python3 -c "
import os, socket, sys
s = socket.create_connection(('holder', $PORT))
s.sendall(b'p' * 1000)
fd = s.detach()
os.set_inheritable(fd, True)
$1
s = socket.socket(fileno=fd)
s.sendall(b'c' * 499 + b'\\n')
s.settimeout(20)
print(s.recv(100).decode().strip())
${3:-}" 2> "$2"
}
then_python="s = socket.socket(fileno=%d)
s.settimeout(20)
s.sendall(b'c' * 499 + b'\\\\n')
print(s.recv(100).decode().strip())"
out=$(exec_python "os.execv(sys.executable, ['python3', '-c', '''import socket
$then_python''' % fd])" "$TMP/exec2.err")
exec_case "python3 os.execv" "$out" "ACK 1500" "$TMP/exec2.err" 1500
# An exec that fails: the program goes on with its connection (now in the
# keeper), and its engine with new connections (this one once the first
# has ended: the server takes one at a time).
out=$(exec_python "try:
    os.execv('/nonexistent/program', ['x'])
except OSError:
    pass" "$TMP/exec3.err" "s.close()
t = socket.create_connection(('holder', $PORT))
t.sendall(b'n\\n')
t.settimeout(20)
print(t.recv(100).decode().strip())")
exec_case "a failed exec" "$out" "ACK 1500
ACK 2" "$TMP/exec3.err" 1500
n=$((n + 1))
wait_until "[ \$(wc -l < '$TMP/holder.out') -ge $n ]" && [ "$(sed -n "${n}p" "$TMP/holder.out")" = 2 ] ||
    fail "a failed exec: the connection made after it: $(cat "$TMP/holder.out")"
# The connection is close-on-exec (python3's default): the new image has
# none of it, and the 1000 bytes written just before the exec still arrive.
MESHIM_CONFIG=$TMP/keeper.ini shimmed timeout 60 python3 -c "
import os, socket
s = socket.create_connection(('holder', $PORT))
s.sendall(b'p' * 1000)
os.execv('/bin/true', ['true'])" 2> "$TMP/exec4.err"
exec_case "close-on-exec" "" "" "$TMP/exec4.err" 1000
ok "exec with a relayed connection (bash then sh, python3 os.execv, a failed exec, close-on-exec): the exchange after the exec and the bytes before it went through a keeper"

# 14. A server that execs its handler right after accept(), in the same
#     process (inetd's way; nc -l -e): the inbound handshake is still under
#     way at the exec, and goes on in the keeper, under its deadline, to
#     the end. Deterministic: the client (unmeshed, python3's ssl with the
#     workload's certificate) sends its ClientHello only once the handler
#     runs.
#     (Its readiness is its own line, not a probe's connect: it takes one.)
PORT=$(free_port)
tls_ini "$TMP/handler.ini" orders "[inbound:$PORT]" "tls = strict"
MESHIM_CONFIG=$TMP/handler.ini shimmed python3 -c "
import os, socket
ls = socket.socket()
ls.bind(('127.0.0.2', $PORT))
ls.listen(4)
print('listening', flush=True)
c, _ = ls.accept()
os.dup2(c.fileno(), 0)
os.dup2(c.fileno(), 1)
os.execv('/bin/sh', ['sh', '-c', 'echo up > $TMP/handler.up; read l; echo \"handler got \$l\"'])" > "$TMP/handler.log" 2>&1 &
PIDS+=($!)
wait_until "grep -q listening '$TMP/handler.log'" || fail "the handler's server did not start: $(cat "$TMP/handler.log")"
out=$(timeout 60 python3 -c "
import os, socket, ssl, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations('$C/ca.pem')
ctx.load_cert_chain('$C/web.pem', '$C/web.key')
s = socket.create_connection(('127.0.0.2', $PORT), timeout=20)
for _ in range(2000):
    if os.path.exists('$TMP/handler.up'):
        break
    time.sleep(0.01)
t = ctx.wrap_socket(s)
t.sendall(b'hello\n')
print(t.recv(100).decode().strip())" 2> "$TMP/handler-client.err")
[ -s "$TMP/handler.up" ] || fail "the handler never ran: $(cat "$TMP/handler.log")"
[ "$out" = "handler got hello" ] ||
    fail "a handler exec'd right after accept(): want 'handler got hello', got '$out': $(cat "$TMP/handler-client.err"; grep -v debug "$TMP/handler.log")"
ok "a server that execs its handler right after accept(): the handshake under way went on in a keeper, and the handler answered over mTLS"

# 15. A descriptor passed (SCM_RIGHTS) while its connect is still under way
#     in the engine, by a program that then exits: the other process holds
#     the placeholder's end, so the connect, plain as it is, ends in a relay
#     (dial.c, `passed`), which goes on in a keeper; put on the sender's
#     number, it would never have reached the receiver (Broken pipe).
#     Deterministic: the server's backlog is full (its SYN dropped) until
#     the receiver has the descriptor.
PORT=$(free_port)
python3 -c "
import os, socket, time
ls = socket.socket()
ls.bind(('127.0.0.2', $PORT))
ls.listen(0)
fill = [socket.socket() for _ in range(3)]
for f in fill:
    f.setblocking(False)
    f.connect_ex(('127.0.0.2', $PORT))
print('listening', flush=True)
while not os.path.exists('$TMP/passed'):
    time.sleep(0.01)
while True:
    c, _ = ls.accept()
    c.settimeout(0.5)
    try:
        got = b''
        while d := c.recv(65536):
            got += d
            if got.endswith(b'\\n'):
                c.sendall(b'ACK %d\\n' % len(got))
                break
    except OSError:
        pass" > "$TMP/passing.log" 2>&1 &
PIDS+=($!)
wait_until "grep -q listening '$TMP/passing.log'" || fail "the backlogged server did not start: $(cat "$TMP/passing.log")"
printf '[meshim]\nlog_level = debug\n[service:plain]\nendpoints = 127.0.0.2:%s\nconnect_timeout = 5s\n' \
    "$PORT" > "$TMP/passing.ini"
mkdir -m 700 "$TMP/passing-stats"
out=$(MESHIM_STATS_DIR=$TMP/passing-stats MESHIM_CONFIG=$TMP/passing.ini shimmed timeout 60 \
    python3 "$ROOT/tests/helpers/pass_connect.py" plain "$PORT" "$TMP/passed" 2> "$TMP/passing.err")
[ "$out" = "ACK 500" ] ||
    fail "a descriptor passed mid-connect, its sender gone: want 'ACK 500', got '$out': $(grep -v debug "$TMP/passing.err")"
grep -q "the relays of 1 connections go on in process" "$TMP/passing.err" ||
    fail "a descriptor passed mid-connect: no keeper: $(cat "$TMP/passing.err")"
ok "a plain connect passed to another process while under way, its sender gone: it ended in a relay, in a keeper ($out)"
