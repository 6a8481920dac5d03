# sink.py HOST PORT OUT [--once]: a TCP server that reads every connection
# to its end and appends "BYTES SHA256" of what it read to OUT, a line per
# connection that sent anything (a readiness probe's empty one is not
# counted), in the order they end. --once: exit after the first such line.
# Run under the shim on a strict port, it is what mTLS clients write to
# (t_mtls, t_exit_flush).
import hashlib
import socket
import sys
import threading

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
once = "--once" in sys.argv[4:]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(16)
lock = threading.Lock()
done = threading.Event()


def serve(c):
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.close()
    if n:
        with lock, open(out, "a") as f:
            f.write("%d %s\n" % (n, h.hexdigest()))
        if once:
            done.set()


def accept():
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


threading.Thread(target=accept, daemon=True).start()
if once:
    done.wait()
else:
    threading.Event().wait()
