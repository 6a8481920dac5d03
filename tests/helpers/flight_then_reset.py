# A TLS server for t_sigpipe that leaves in the middle of the handshake:
# it answers each ClientHello with its real TLS 1.3 flight (CERTDIR's
# orders identity, client certificates required), then at once sends FIN
# and a reset (SO_LINGER 0), so the client's next write, its own flight,
# meets a socket that is gone: EPIPE, and SIGPIPE in the writing thread
# unless it is held. Not always: on a busy host the client may write its
# flight before this server's reset leaves (its handshake then succeeds).
# Usage: flight_then_reset.py HOST PORT CERTDIR
import socket, ssl, struct, sys

host, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(certs + "/orders.pem", certs + "/orders.key")
ctx.load_verify_locations(certs + "/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(8)
while True:
    s, _ = ls.accept()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            incoming.write(data)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flight = outgoing.read()
                if flight:
                    # Set before the flight leaves: after it, the client
                    # races to write its own before the reset comes.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.sendall(flight)
                    break
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    s.close()
