# A thread-per-connection echo server on a blocking listening socket (as
# socketserver makes it): its connections are relayed, never handed to
# kernel TLS (relay.h says why). Prints "ready" once it listens.
import socketserver, sys

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            self.request.sendall(d)

socketserver.ThreadingTCPServer.allow_reuse_address = True
with socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), Echo) as s:
    print("ready", flush=True)
    s.serve_forever()
