# A TCP server for t_resets: each client sends one mode byte.
#   A  100000 bytes; once the client says it has them all (one byte back),
#      close with SO_LINGER 0 (a reset: bytes not sent yet would be lost)
#   F  the same, then close (FIN)
#   U  1000 bytes, then read until the client's end; prints how it ended
#   G  (an HTTP/1.1 GET) a 200 whose body (50000 bytes) ends with the
#      connection, then a reset;  O (OPTIONS): the same, ended by FIN
# Usage: reset_server.py HOST PORT
import socket, struct, sys, threading

def serve(c):
    mode = c.recv(1)
    if mode in (b"A", b"F"):
        c.sendall(b"x" * 100000)
        c.recv(1)
    elif mode == b"U":
        c.sendall(b"y" * 1000)
        try:
            while c.recv(65536):
                pass
            print("unread: EOF", flush=True)
        except OSError as e:
            print("unread:", e.__class__.__name__, flush=True)
    elif mode in (b"G", b"O"):
        req = mode
        while b"\r\n\r\n" not in req:
            d = c.recv(65536)
            if not d:
                break
            req += d
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 50000)
    if mode in (b"A", b"G"):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()

ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(16)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
