# A server with a listen backlog of 1 that accepts nothing until a file
# exists, then answers every connection, for t_accept_burst:
#   late_accept_server.py ADDRESS PORT GO_FILE
# Prints "listening" when it listens. Until GO_FILE appears its accept
# queue holds two connections; Linux drops the SYNs of the others (the
# client's kernel would send each again after 1 s). Then its backlog is
# 128, and it accepts. Each connection gets
# "HTTP/1.0 200 OK" and "hello" once it has sent something.
import os, socket, sys, threading, time

address, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((address, port))
ls.listen(1)
print("listening", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
# From here the queue is long (listen again changes the backlog): the
# retries that the dropped SYNs made, which come together, all fit.
ls.listen(128)


def serve(c):
    try:
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello\n")
    except OSError:
        pass
    c.close()


while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
