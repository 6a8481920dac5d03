# One echo round with a service by name, then our FIN and the peer's.
#   echo_once.py SERVICE PORT
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"fallback round\n")
got = b""
while len(got) < 15:
    d = s.recv(100)
    assert d, got
    got += d
assert got == b"fallback round\n", got
s.shutdown(socket.SHUT_WR)
assert s.recv(100) == b""
print("ok")
