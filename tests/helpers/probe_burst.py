# A burst of connections to one service at once, every one of which must be
# answered, for t_probe_burst:
#   probe_burst.py tcp HOST PORT NONBLOCKING BLOCKING
#       NONBLOCKING sockets connect() without blocking, then "issued" is
#       printed; then BLOCKING threads connect with blocking sockets. Each
#       connection sends a GET for /index.html and reads the answer.
#   probe_burst.py http HOST PORT THREADS
#       THREADS threads each GET http://HOST:PORT/index.html (urllib).
# Prints "answered N of M", then one line per failure.
import errno, select, socket, sys, threading, urllib.request

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
answers, failures, lock = [], [], threading.Lock()
REQUEST = b"GET /index.html HTTP/1.0\r\nHost: burst\r\n\r\n"


def note(ok, what):
    with lock:
        (answers if ok else failures).append(what)


def exchange(s, who):
    s.settimeout(30)
    s.sendall(REQUEST)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    note(data.startswith(b"HTTP/1.0 200") and b"hello" in data, "%s: %r" % (who, data[:60]))


def blocking(i):
    try:
        # No timeout: Python would make the socket non-blocking and poll.
        exchange(socket.create_connection((host, port)), "blocking %d" % i)
    except OSError as e:
        note(False, "blocking %d: %s" % (i, e))


def nonblocking(n):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc == errno.EINPROGRESS:
            socks.append((i, s))
        else:
            note(False, "non-blocking %d: connect: %s" % (i, errno.errorcode.get(rc, rc)))
            s.close()
    return socks


def settle(socks):
    for i, s in socks:
        _, w, _ = select.select([], [s], [], 30)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if w else errno.ETIMEDOUT
        if err:
            note(False, "non-blocking %d: %s" % (i, errno.errorcode.get(err, err)))
            s.close()
            continue
        s.setblocking(True)
        try:
            exchange(s, "non-blocking %d" % i)
        except OSError as e:
            note(False, "non-blocking %d: %s" % (i, e))


def get(i):
    try:
        with urllib.request.urlopen("http://%s:%d/index.html" % (host, port), timeout=30) as r:
            note(r.status == 200 and b"hello" in r.read(), "http %d: %d" % (i, r.status))
    except Exception as e:
        note(False, "http %d: %s" % (i, e))


if mode == "tcp":
    socks = nonblocking(int(sys.argv[4]))
    print("issued", flush=True)
    threads = [threading.Thread(target=blocking, args=(i,)) for i in range(int(sys.argv[5]))]
    total = len(threads) + int(sys.argv[4])
else:
    socks = []
    threads = [threading.Thread(target=get, args=(i,)) for i in range(int(sys.argv[4]))]
    total = len(threads)
for t in threads:
    t.start()
settle(socks)
for t in threads:
    t.join()
print("answered %d of %d" % (len(answers), total))
for f in failures:
    print(f)
