# FIONREAD on a kernel TLS socket counts what a read returns. The kernel's
# own answer counts the ciphertext queued, a record not whole yet included,
# and programs that read while FIONREAD > 0 (wrk) then get EAGAIN and take
# it for an error. A meshed python3 holds half a record (split_tap.py): its
# FIONREAD must be 0 and, once the record is whole, every FIONREAD must be
# readable at once. And wrk over kernel TLS: a 1 MiB body, no socket error.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
tap=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$port" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
python3 -u "$ROOT/tests/ktls/split_tap.py" "$tap" 127.0.0.2 "$port" "$TMP/split" > "$TMP/tap.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.1 "$tap"
tls_ini "$TMP/client.ini" web "${GUEST_SLOW[@]}" "[service:echo]" "endpoints = 127.0.0.1:$tap" "tls = mtls"

MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" "$TMP/split" <<'PY' 2> "$TMP/client.err" || fail "python3: $(grep -v 'info\|debug' "$TMP/client.err")"
import array, fcntl, os, select, socket, sys, termios, time
port, mark = int(sys.argv[1]), sys.argv[2]
def fionread(s):
    n = array.array("i", [0])
    fcntl.ioctl(s.fileno(), termios.FIONREAD, n)
    return n[0]
s = socket.create_connection(("echo", port))
def tls_stat():
    with open("/proc/net/tls_stat") as f:
        return {k: int(v) for k, v in (l.split() for l in f)}
for _ in range(300):                  # the server's end is handed off by its engine
    if tls_stat()["TlsCurrRxSw"] >= 2: break
    time.sleep(0.05)
assert tls_stat()["TlsCurrRxSw"] >= 2, "not kernel TLS at both ends: %r" % tls_stat()
s.sendall(b"x" * 12000)
for _ in range(300):
    if os.path.exists(mark): break
    time.sleep(0.1)
assert os.path.exists(mark), "the tap never split a record"
n = fionread(s)
assert n == 0, "FIONREAD says %d with half a record queued" % n
try:
    s.recv(65536, socket.MSG_DONTWAIT)
    raise SystemExit("a read returned data from half a record")
except BlockingIOError:
    pass
s.sendall(b"m")                       # the tap lets the rest go
got, deadline = 0, time.time() + 30
while got < 12001 and time.time() < deadline:
    # poll says readable as soon as any ciphertext is queued (tcp_poll);
    # FIONREAD says whether a whole record is.
    select.select([s], [], [], 10)
    n = fionread(s)
    if n == 0:
        time.sleep(0.01)
        continue
    d = s.recv(n, socket.MSG_DONTWAIT)  # BlockingIOError here is the bug
    assert d, "EOF"
    got += len(d)
assert got == 12001, "only %d bytes" % got
print("ok")
PY
ok "FIONREAD: 0 while half a record is queued, then exactly what a read returns"
