"""A connect passed to another process while still under way, by a sender
that then exits (t_exit_flush, t_ktls_passed).

    pass_connect.py SERVICE PORT RELEASE_FILE

A sender process starts a non-blocking connect to SERVICE:PORT, passes the
descriptor to this process over a socketpair (SCM_RIGHTS) and exits. Once
it has the descriptor this process creates RELEASE_FILE (the test's server
or tap holds the connect until then), sends 499 bytes and a newline, and
prints what comes back up to a newline: "echoed" when it is those same 500
bytes, else the line itself, or "error ERRNO".
"""
import socket
import subprocess
import sys

service, port, release = sys.argv[1], int(sys.argv[2]), sys.argv[3]
SENDER = """
import errno, socket, sys
s = socket.socket()
s.setblocking(False)
assert s.connect_ex((sys.argv[1], int(sys.argv[2]))) == errno.EINPROGRESS
socket.send_fds(socket.socket(fileno=1), [b'x'], [s.fileno()])
"""
a, b = socket.socketpair()
p = subprocess.Popen([sys.executable, "-c", SENDER, service, str(port)], stdout=b.fileno())
b.close()
_, fds, _, _ = socket.recv_fds(a, 10, 1)
open(release, "w").close()
assert p.wait() == 0
s = socket.socket(fileno=fds[0])
s.settimeout(20)
msg = b"c" * 499 + b"\n"
try:
    s.sendall(msg)
    got = b""
    while not got.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        got += d
    print("echoed" if got == msg else got.decode().strip())
    s.close()
except OSError as e:
    print("error", e.errno)
