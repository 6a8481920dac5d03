# The meshed client of t_ktls: every check an application would notice,
# against the services "echo" (echo_server.py, through a recording tap) and
# "greet" (echo_server.py --greet), both reached by name.
#   client.py PORT BULK_MB
import asyncio, hashlib, os, socket, sys, threading

PORT, BULK_MB = int(sys.argv[1]), int(sys.argv[2])

def tls_stat():
    with open("/proc/net/tls_stat") as f:
        return {k: int(v) for k, v in (l.split() for l in f)}

def until_eof(s):
    data = b""
    while True:
        d = s.recv(65536)      # kernel TLS: EIO here if the peer sent a control record
        if not d:
            return data
        data += d

def echo_round(s, what):
    s.sendall(what)
    got = b""
    while len(got) < len(what):
        d = s.recv(65536)
        assert d, "EOF before the echo of %r" % what
        got += d
    assert got == what, (got, what)

# Blocking (the handshake in the caller's thread) and with a timeout (the
# engine's path); each ends with our FIN, then the server's, read as EOF.
for timeout in (None, 5):
    s = socket.create_connection(("echo", PORT), timeout=timeout)
    echo_round(s, b"ping %r\n" % timeout)
    st = tls_stat()
    assert st["TlsCurrTxSw"] >= 2 and st["TlsCurrRxSw"] >= 2, st   # both ends, this kernel
    s.shutdown(socket.SHUT_WR)
    assert until_eof(s) == b""
    s.close()
print("ok: blocking and timeout sockets: kernel TLS at both ends, FIN read as EOF")

async def aio():
    r, w = await asyncio.open_connection("echo", PORT)
    w.write(b"asyncio\n")
    assert await r.readexactly(8) == b"asyncio\n"
    w.write_eof()
    assert await r.read() == b""
    w.close()
asyncio.run(aio())
print("ok: asyncio client")

# The server half-closes first: we read its FIN, then still send.
s = socket.create_connection(("echo", PORT), timeout=10)
s.sendall(b"HALFCLOSE\n")
assert until_eof(s) == b"bye\n"
s.sendall(b"still here\n")
s.shutdown(socket.SHUT_WR)
s.close()
print("ok: the server's half-close, then our bytes")

# A server that speaks first: its greeting is the first thing read.
s = socket.create_connection(("greet", PORT + 1), timeout=10)
first = b""
while not first.endswith(b"\n"):
    first += s.recv(100)
assert first == b"HELLO meshim\n", first
echo_round(s, b"after the greeting\n")
s.close()
print("ok: a server that speaks first")

# fork after the hand-off: the child uses the connection, then the parent.
s = socket.create_connection(("echo", PORT), timeout=10)
echo_round(s, b"before fork\n")
pid = os.fork()
if pid == 0:
    try:
        echo_round(s, b"from the child\n")
        os._exit(0)
    except BaseException as e:
        print("child:", e, file=sys.stderr)
        os._exit(1)
_, status = os.waitpid(pid, 0)
assert status == 0, status
echo_round(s, b"parent again\n")
s.close()
print("ok: fork after the hand-off")

# Bulk: BULK_MB each way at once, compared by sha256.
block = hashlib.sha256(b"meshim").digest() * 32768           # 1 MiB
s = socket.create_connection(("echo", PORT), timeout=60)
sent = hashlib.sha256()
def send():
    for i in range(BULK_MB):
        chunk = block[i % 251:] + block[:i % 251]
        sent.update(chunk)
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got, n = hashlib.sha256(), 0
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    got.update(d)
    n += len(d)
t.join()
s.close()
assert n == BULK_MB << 20 and got.hexdigest() == sent.hexdigest(), (n, got.hexdigest(), sent.hexdigest())
print("ok: %d MB each way, sha256 equal" % BULK_MB)
