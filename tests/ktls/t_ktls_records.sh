# AES-GCM's record limit on a long-lived kernel TLS connection (RFC 8446
# §5.5: about 2^24.5 records per key; Linux 6.1 cannot change the keys).
# The policy (mesh/ktls.h): the engine reads each kernel TLS socket's
# record numbers every 5 s and shuts down one at the limit, with a warning;
# the application sees the connection end and a new one has new keys.
# Here the server's limit is lowered to 2000 records (MESHIM_KTLS_RECORD_LIMIT)
# and a meshed python3 client streams 16 KiB records through the echo
# server until the connection ends: it must end by EOF (no EIO, no hang),
# past 2000 records, with the server's warning; then a new connection works.
# (The client's writer keeps sending past the end, so the server's kernel
# may answer with a reset: the client's read then gets EPIPE once, then
# the records still queued and EOF, as any TCP client of a server that
# closes on it.)
. "$(dirname "$0")/lib.sh"

port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_KTLS_RECORD_LIMIT=2000 MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -u "$ROOT/tests/ktls/echo_server.py" 127.0.0.2 "$port" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
tls_ini "$TMP/client.ini" web "${GUEST_SLOW[@]}" "[service:echo]" "endpoints = 127.0.0.2:$port" "tls = mtls"

MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" <<'PY' > "$TMP/client.out" 2> "$TMP/client.err" ||
import socket, sys, threading, time
port = int(sys.argv[1])
s = socket.create_connection(("echo", port))
with open("/proc/net/tls_stat") as f:
    assert {k: int(v) for k, v in (l.split() for l in f)}["TlsCurrTxSw"] >= 1, "not kernel TLS"
chunk = b"r" * 16384                   # one full record per send
stop = time.time() + 90

def writer():
    try:
        while time.time() < stop:
            s.sendall(chunk)
    except OSError:
        pass                           # the server has ended the connection

threading.Thread(target=writer, daemon=True).start()
got, how, errors = 0, "EOF", 0
while True:
    try:
        d = s.recv(65536)              # EIO here would be a record the kernel refused
    except (BrokenPipeError, ConnectionResetError) as e:
        # The server's kernel answers the writer's records after the end
        # with a reset; a socket in CLOSE_WAIT takes that as EPIPE. Kernel
        # TLS (6.1 tls_rx_rec_wait) reports the socket's error before the
        # records still queued behind it and not yet parsed: the reads after
        # it return those, then EOF. Once only; EIO or EBADMSG stay failures.
        errors += 1
        assert errors == 1, "a second %s after the first" % e.__class__.__name__
        how = "%s, then the rest and EOF" % e.__class__.__name__
        continue
    if not d:
        break
    got += len(d)
    assert time.time() < stop, "still open after 90 s, %d bytes echoed" % got
print("echoed", got // 16384, "records before", how)
assert got // 16384 >= 1000, got       # the client's own records are about as many as the server's
s2 = socket.create_connection(("echo", port))
s2.sendall(b"again\n")
assert s2.recv(100) == b"again\n"
s2.close()
print("ok")
PY
    fail "python3: $(cat "$TMP/client.out"; grep -v 'info\|debug' "$TMP/client.err")"
grep -q '^ok' "$TMP/client.out" || fail "client: $(cat "$TMP/client.out")"
grep -q 'records under one key' "$TMP/server.log" || fail "no warning from the server: $(cat "$TMP/server.log")"
n=$(sed -n 's/.*ended after \([0-9]*\) records.*/\1/p' "$TMP/server.log" | head -n 1)
[ "${n:-0}" -ge 2000 ] || fail "ended after ${n:-?} records, before the limit"
ok "record limit: the connection ended ($(sed -n 's/.*records before //p' "$TMP/client.out")) after $n records (limit 2000), with a warning; a new one works"
