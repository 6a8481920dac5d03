# inherited_server.py FD: answers every connection on the listening socket
# at descriptor FD, which it inherited, with one HTTP/1.0 answer ("served
# over mTLS"), after reading the request. t_exec_listener execs and spawns
# it with an empty environment.
import socket
import sys

ls = socket.socket(fileno=int(sys.argv[1]))
while True:
    c, _ = ls.accept()
    c.settimeout(10)
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 17\r\n\r\nserved over mTLS\n")
    except OSError:
        pass
    c.close()
