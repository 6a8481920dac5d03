# SO_RCVTIMEO and SO_SNDTIMEO over mTLS relays: a program that sets them
# before or during a non-blocking connect, then reads or writes in blocking
# mode, gets EAGAIN after its timeout, as without the mesh; so does a server
# whose accepted sockets inherit them from its listening socket. Before, the
# relay's descriptor had none: the read or write waited for ever.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

# The server: meshed, strict, silent. Its listening socket has a 0.4 s
# SO_RCVTIMEO, which accepted sockets inherit; it reads nothing from the
# first client (that one waits to see the timeout) and records how long its
# own blocking recv on the second waited.
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" "$TMP/server.out" \
    > "$TMP/server.log" 2>&1 <<'PY' &
import socket, struct, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 400000))
ls.bind(("127.0.0.2", int(sys.argv[1]))); ls.listen(8)
held = []
while True:
    try:
        c, _ = ls.accept()
    except BlockingIOError:         # accept() keeps the timeout too: no client yet
        continue
    held.append(c)
    c.setblocking(True)             # python's own timeout off: the kernel's alone
    t = time.monotonic()
    try:
        d = c.recv(10)
        what = "got %r" % d
    except BlockingIOError:
        what = "EAGAIN"
    with open(sys.argv[2], "a") as f:
        f.write("%s %.2f\n" % (what, time.monotonic() - t))
PY
PIDS+=($!)
wait_port 127.0.0.2 "$port"
tls_ini "$TMP/client.ini" web "[service:silent]" "endpoints = 127.0.0.2:$port" "tls = mtls"

# client WHEN OPTION: a non-blocking connect, OPTION (SO_RCVTIMEO: recv,
# SO_SNDTIMEO: sendall of 64 MiB the server never reads) set to 0.5 s
# before the connect or while it goes on, then blocking mode; prints what
# the blocking call said and after how long.
cat > "$TMP/client.py" <<'PY'
import errno, fcntl, os, select, socket, struct, sys, time
when, option, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
name = getattr(socket, option)
tv = struct.pack("ll", 0, 500000)
s = socket.socket()
if when == "before":
    s.setsockopt(socket.SOL_SOCKET, name, tv)
s.setblocking(False)
try:
    s.connect(("silent", port))
except BlockingIOError:
    pass
if when == "during":
    s.setsockopt(socket.SOL_SOCKET, name, tv)
assert select.select([], [s], [], 10)[1], "not connected after 10 s"
fl = fcntl.fcntl(s.fileno(), fcntl.F_GETFL)
fcntl.fcntl(s.fileno(), fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
t = time.monotonic()
try:
    if option == "SO_RCVTIMEO":
        s.recv(10)
    else:
        s.sendall(b"x" * (64 << 20))
    print("no timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), "%.2f" % (time.monotonic() - t))
PY
for when in before during; do
    for option in SO_RCVTIMEO SO_SNDTIMEO; do
        out=$(MESHIM_CONFIG=$TMP/client.ini timeout 20 env LD_PRELOAD="$MESHIM_PRELOAD" \
              python3 "$TMP/client.py" "$when" "$option" "$port" 2> "$TMP/client.err")
        rc=$?
        [ "$rc" -eq 124 ] && fail "$option set $when the connect: the blocking call still waited after 20 s"
        case "$out" in
            EAGAIN\ *) ;;
            *) fail "$option set $when the connect: '$out' (exit $rc): $(tail -3 "$TMP/client.err")" ;;
        esac
        ok "$option set $when a non-blocking mTLS connect: the blocking call gave up with $out s"
    done
done

# The server's side: its accepted sockets inherit the listening socket's
# SO_RCVTIMEO; a client that sends nothing makes its recv give up.
: > "$TMP/server.out"
MESHIM_CONFIG=$TMP/client.ini shimmed python3 -c "
import socket, time
s = socket.create_connection(('silent', $port), timeout=10)
time.sleep(3)" 2> "$TMP/client.err" || fail "client: $(tail -3 "$TMP/client.err")"
wait_until "[ -s '$TMP/server.out' ]" || fail "the server's recv did not give up: $(cat "$TMP/server.log")"
grep -q '^EAGAIN ' "$TMP/server.out" || fail "the server's recv: $(cat "$TMP/server.out")"
ok "a server's accepted mTLS socket keeps the listening socket's SO_RCVTIMEO: $(cat "$TMP/server.out") s"
