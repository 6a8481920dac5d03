# A TCP relay, never meshed, that holds back half of one TLS record.
#   split_tap.py LISTEN_PORT TARGET_HOST TARGET_PORT MARK_FILE
# Server-to-client records pass whole, except the first one (of any
# connection) longer than 4000 bytes: its first half is sent, MARK_FILE is created, and
# the rest waits until the client sends anything more. So the client holds
# part of a record that kernel TLS cannot decrypt yet.
import socket, sys, threading
port, host, tport, mark = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(8)
split = threading.Event()       # done once
held = threading.Event()        # half a record is out
release = threading.Event()     # the client spoke again

def up(c, s):
    while True:
        try:
            d = c.recv(65536)
        except OSError:
            d = b""
        if held.is_set():
            release.set()
        if not d:
            break
        s.sendall(d)
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def exactly(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            return None
        b += d
    return b

def down(c, s):
    while True:
        head = exactly(s, 5)
        if head is None:
            break
        body = exactly(s, int.from_bytes(head[3:5], "big"))
        if body is None:
            break
        rec = head + body
        if not split.is_set() and len(body) > 4000:
            split.set()
            c.sendall(rec[:len(rec) // 2])
            held.set()
            open(mark, "w").close()
            release.wait(30)
            rec = rec[len(rec) // 2:]
        c.sendall(rec)
    try:
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass

while True:
    c, _ = ls.accept()
    s = socket.create_connection((host, tport))
    threading.Thread(target=up, args=(c, s), daemon=True).start()
    threading.Thread(target=down, args=(c, s), daemon=True).start()
