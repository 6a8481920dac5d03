"""bench/idle.py HOST PORT N SERVER_PID: memory per idle connection.

Opens one connection (the warm-up: the shim loads its identity, the server
its first connection), then N more keep-alive connections to HOST:PORT, one
HTTP request each, and holds them. Prints how much the resident memory of
this process and of SERVER_PID (an nginx worker) grew over the N, in KiB:
"client_kib server_kib". bench/run runs it once plainly and once over mTLS
with the shim at both ends; the difference per connection is what the
shim's mTLS costs an idle connection (SSL, relay state, buffers).
"""
import resource
import socket
import sys
import time

host, port, n, server = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss(pid="self"):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def one():
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while not data.endswith(b"ok\n"):
        d = s.recv(4096)
        if not d:
            raise SystemExit("idle.py: connection closed early")
        data += d
    return s


held = [one()]
time.sleep(0.2)                 # let both ends settle (buffers given back)
c0, s0 = rss(), rss(server)
held += [one() for _ in range(n)]
time.sleep(0.2)
c1, s1 = rss(), rss(server)
print(c1 - c0, s1 - s0)
for s in held:
    s.close()
