# A close that waits: a socket given SO_LINGER with a time (Java's
# setSoLinger, Tomcat's connectionLinger) whose peer reads nothing waits in
# its close() until its bytes go or the time is up. In a process with a
# relayed connection, the shim's close hook holds the swap lock across the
# program's close, and that wait held every other thread's close and the
# engine's swaps with it: python3's second thread waited 3.5 s for an mTLS
# connect that takes milliseconds. The wait now happens after the lock
# (ownfd_lingering), and the close still waits as the kernel's does; the
# same for a dup2 onto the socket's number (a shell's redirection), whose
# release of the socket is the close that waits.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

mp=$(free_port)
mkdir -p "$TMP/www"; echo "hello over mTLS" > "$TMP/www/index.html"
tls_ini "$TMP/server.ini" orders "[inbound:$mp]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -m http.server --bind 127.0.0.2 --directory "$TMP/www" "$mp" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
# A server that takes connections and reads nothing, with a small window.
sp=$(free_port)
python3 -c '
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
l.bind(("127.0.0.3", int(sys.argv[1]))); l.listen(8)
held = []
while True:
    held.append(l.accept()[0])
' "$sp" > /dev/null 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$mp"
wait_port 127.0.0.3 "$sp"

tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$mp" "tls = mtls"
for how in close dup2; do
out=$(MESHIM_CONFIG=$TMP/client.ini timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" python3 -c '
import os, socket, struct, sys, threading, time
relayed = socket.create_connection(("orders", 80))      # a relay: closes take the swap lock
times = {}
how = sys.argv[2]
def lingering():
    s = socket.create_connection(("127.0.0.3", int(sys.argv[1])))
    s.setblocking(False)
    try:
        while True:
            s.send(b"x" * 65536)
    except BlockingIOError:
        pass
    s.setblocking(True)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 4))
    started.set()
    t = time.monotonic()
    if how == "dup2":               # a shell redirection onto the number
        null = os.open("/dev/null", os.O_RDONLY); os.dup2(null, s.fileno()); os.close(null)
    else:
        s.close()
    times["close"] = time.monotonic() - t
def connecting():
    started.wait(); time.sleep(0.5)
    t = time.monotonic(); c = socket.create_connection(("orders", 80), 20)
    c.sendall(b"GET / HTTP/1.0\r\n\r\n"); body = b""
    while True:                     # HTTP/1.0: the server closes after the answer
        part = c.recv(4096)
        if not part:
            break
        body += part
    c.close()
    times["connect"] = time.monotonic() - t
    times["answered"] = b"hello over mTLS" in body
started = threading.Event()
a = threading.Thread(target=lingering); b = threading.Thread(target=connecting)
a.start(); b.start(); a.join(); b.join()
print("close=%.2f connect=%.2f answered=%s" % (times["close"], times["connect"], times["answered"]))
' "$sp" "$how" 2> "$TMP/client.err") || fail "python3 ($how) failed: $out $(tail -3 "$TMP/client.err")"
[[ "$out" =~ ^close=([0-9.]+)\ connect=([0-9.]+)\ answered=True$ ]] || fail "'$out' $(tail -3 "$TMP/client.err")"
close_s=${BASH_REMATCH[1]} connect_s=${BASH_REMATCH[2]}
# The close waited (most of its 4 s: the other thread's connect came 0.5 s
# in); the connect did not wait for it.
awk -v c="$close_s" 'BEGIN { exit !(c >= 3.0) }' || fail "the lingering $how did not wait ($out): nothing was tested"
awk -v c="$connect_s" 'BEGIN { exit !(c < 2.0) }' ||
    fail "an mTLS connect waited for another thread's lingering $how: $out"
ok "a socket lingering 4 s (SO_LINGER, a peer that reads nothing) let go by $how in one thread; another thread's mTLS connect meanwhile: $out"
done

# --- the relay's close of a relayed connection's socket ------------------------
# The program's SO_LINGER on a relayed connection goes to its real socket,
# which the relay closes once the peer has taken the bytes or fin_timeout
# has passed since the program's close: that close waited in the engine's
# thread, and every relay and connect of the process with it (an mTLS
# connect took 4.9 s, 60 s after the close). In a network namespace of its
# own, whose tcp_fin_timeout is 2 s; the peer is an mTLS server whose
# program reads nothing; the program writes 1 MiB, which the relay moves
# whole into its socket (so it reads the program's end to its close) and
# the peer does not take.
if unshare -n true 2> /dev/null; then
    tls_ini "$TMP/ns-server.ini" orders "[inbound:8080]" "tls = strict" "[inbound:8081]" "tls = strict"
    tls_ini "$TMP/ns-client.ini" web "[service:orders]" "endpoints = 127.0.0.2:8080" "tls = mtls" \
        "[service:sink]" "endpoints = 127.0.0.2:8081" "tls = mtls"
    ini_access_log "$TMP/ns-client.ini" "$TMP/ns-client.access"
    out=$(env PRELOAD="$MESHIM_PRELOAD" SINI="$TMP/ns-server.ini" CINI="$TMP/ns-client.ini" LOG="$TMP/ns-client.access" \
          WWW="$TMP/www" unshare -n bash -c '
        ip link set lo up && echo 2 > /proc/sys/net/ipv4/tcp_fin_timeout || exit 1
        MESHIM_CONFIG=$SINI LD_PRELOAD=$PRELOAD python3 -m http.server --bind 127.0.0.2 --directory "$WWW" 8080 \
            > /dev/null 2>&1 & a=$!
        MESHIM_CONFIG=$SINI LD_PRELOAD=$PRELOAD python3 -c "
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
l.bind((\"127.0.0.2\", 8081)); l.listen(8)
held = []
while True:
    held.append(l.accept()[0])
" > /dev/null 2>&1 & b=$!
        MESHIM_CONFIG=$CINI LD_PRELOAD=$PRELOAD python3 -c "
import socket, struct, time
for port in (8080, 8081):                       # both listening (60 s at most)
    for _ in range(600):
        try:
            socket.create_connection((\"127.0.0.2\", port)).close(); break
        except OSError:
            time.sleep(0.1)
s = socket.create_connection((\"sink\", 80))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(\"ii\", 1, 5))
s.setblocking(False)
left = 1 << 20          # more than the peer takes, less than the relay socket queues
while left > 0:
    try:
        left -= s.send(b\"x\" * min(left, 65536))
    except BlockingIOError:
        time.sleep(0.01)
s.close()
def relay_over():                               # its record is written as the relay ends
    try:
        return \"\\\"service\\\":\\\"sink\\\"\" in open(\"$LOG\").read()
    except OSError:
        return False
worst, start = 0.0, time.monotonic()
while not relay_over() and time.monotonic() - start < 30:
    t = time.monotonic()
    c = socket.create_connection((\"orders\", 80), 30); c.sendall(b\"GET / HTTP/1.0\\r\\n\\r\\n\")
    while c.recv(4096):
        pass
    c.close()
    worst = max(worst, time.monotonic() - t)
    time.sleep(0.2)
print(\"worst=%.2f over=%s\" % (worst, relay_over()))
" 2> "$TMP/ns-client.err"
        kill $a $b')
    [[ "$out" =~ ^worst=([0-9.]+)\ over=True$ ]] ||
        fail "the relay's lingering close: '$out' (over=False: its relay never ended) $(tail -3 "$TMP/ns-client.err")"
    awk -v w="${BASH_REMATCH[1]}" 'BEGIN { exit !(w < 2.0) }' ||
        fail "mTLS connects waited for a relay's lingering close: $out"
    ok "a relayed connection closed with SO_LINGER 5 s toward a peer that reads nothing: its relay ended after fin_timeout, mTLS connects meanwhile at most ${BASH_REMATCH[1]} s"
fi
