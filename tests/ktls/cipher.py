# Which cipher a kernel TLS socket runs, asked at both ends (t_ktls_cipher).
#   cipher.py server HOST PORT    an asyncio server (accepts on a
#                                 non-blocking socket, as kernel TLS needs)
#   cipher.py client NAME PORT MB one connection by service name
# The client sends "cipher?"; the server answers with its socket's ciphers
# (SOL_TLS TLS_TX and TLS_RX: the kernel's header, whose second u16 is the
# cipher), then echoes MB MiB, whose sha256 the client checks. The client
# prints "client TX RX server TX RX" (0: not a kernel TLS socket).
import asyncio, hashlib, os, socket, struct, sys

SOL_TLS, TLS_TX, TLS_RX = 282, 1, 2

def cipher(sock, direction):
    try:
        return struct.unpack("HH", sock.getsockopt(SOL_TLS, direction, 4))[1]
    except OSError:
        return 0

async def serve(reader, writer):
    sock = writer.get_extra_info("socket")
    line = await reader.readline()
    assert line == b"cipher?\n", line
    writer.write(b"%d %d\n" % (cipher(sock, TLS_TX), cipher(sock, TLS_RX)))
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()

async def server(host, port):
    srv = await asyncio.start_server(serve, host, port)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()

def client(name, port, mb):
    s = socket.create_connection((name, port), timeout=30)
    s.sendall(b"cipher?\n")
    f = s.makefile("rb")
    theirs = f.readline().split()
    assert len(theirs) == 2, theirs
    payload = os.urandom(mb << 20)
    want = hashlib.sha256(payload).hexdigest()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = hashlib.sha256()
    n = 0
    while True:
        d = f.read1(65536)
        if not d:
            break
        got.update(d)
        n += len(d)
    assert n == len(payload) and got.hexdigest() == want, (n, len(payload))
    print("client %d %d server %s %s" % (cipher(s, TLS_TX), cipher(s, TLS_RX), theirs[0].decode(), theirs[1].decode()),
          flush=True)
    s.close()

if sys.argv[1] == "server":
    asyncio.run(server(sys.argv[2], int(sys.argv[3])))
else:
    client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
