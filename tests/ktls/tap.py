# A recording TCP relay, never meshed: what the two ends put on the wire.
#   tap.py LISTEN_PORT TARGET_HOST TARGET_PORT OUT_PREFIX [HOLD_FILE]
# Appends client→server bytes to OUT_PREFIX.up and the others to .down,
# one pair of files per connection (OUT_PREFIX.N.up / .N.down). With
# HOLD_FILE, a connection is accepted at once but nothing crosses it until
# that file exists: the client's TLS handshake stays under way.
import os, socket, sys, threading, time
port, host, tport, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
hold = sys.argv[5] if len(sys.argv) > 5 else None
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(64)

def pipe(a, b, path):
    with open(path, "wb") as f:
        while True:
            try:
                d = a.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            f.write(d)
            try:
                b.sendall(d)
            except OSError:
                break
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def serve(c, n):
    while hold and not os.path.exists(hold):
        time.sleep(0.01)
    s = socket.create_connection((host, tport))
    threading.Thread(target=pipe, args=(c, s, "%s.%d.up" % (out, n)), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, "%s.%d.down" % (out, n)), daemon=True).start()

n = 0
while True:
    c, _ = ls.accept()
    n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
