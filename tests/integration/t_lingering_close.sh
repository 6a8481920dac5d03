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
