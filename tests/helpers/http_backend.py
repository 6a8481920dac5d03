"""An HTTP/1.1 backend for the protocol = http tests (t_http.sh): python3's
own http.server, threaded, keep-alive.

    http_backend.py HOST PORT NAME LOG [MODE]

Every request appends "METHOD PATH attempt=N conn=PORT connection=VALUE" to
LOG (flushed at once; PORT: the client's, VALUE: its Connection header or
-), so a test counts what each endpoint was really sent, and on which
connection. MODE 503 answers every request 503; MODE drop closes the
connection without an answer (a server that fails mid-request). Paths:
    /chunked   a chunked answer with a trailer
    /204, /304 answers without a body
    /close     an answer with Connection: close, then the connection ends
    /upgrade   101 Switching Protocols, then every byte echoed upper-cased
    /slow      answers after 2 s
    /hold      answers once the file LOG.release exists (30 s at most)
    /header/NAME  the request's NAME header values, one a line ("-": none)
    /bighead/N    an answer whose x-big header is N bytes long
    anything else: "NAME METHOD PATH host=HOST attempt=N len=BODYLEN\\n";
    a request body (Content-Length or chunked, with Expect: 100-continue
    answered by http.server) is read and its length reported.
"""
import http.server
import socket
import sys
import threading
import time

HOST, PORT, NAME, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
MODE = sys.argv[5] if len(sys.argv) > 5 else "ok"
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass            # trailers
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, code, text, extra=()):
        body = text.encode()
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        # Head and body in one write (end_headers would send the head
        # alone): a backend killed -9 between the two (t_http_programs)
        # left the proxy half an answer, which it can only cut, and wrk
        # counted a read error.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def handle_any(self):
        data = self.body()
        attempt = self.headers.get("x-meshim-attempt")
        with lock, open(LOG, "a") as f:
            f.write("%s %s attempt=%s conn=%d connection=%s\n" % (
                self.command, self.path, attempt, self.client_address[1],
                self.headers.get("connection", "-")))
        if MODE == "503":
            self.send(503, "%s unavailable\n" % NAME)
            return
        if MODE == "drop":
            self.close_connection = True
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.send_header("trailer", "x-check")
            self.end_headers()
            for part in (b"chunk-one ", b"chunk-two\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nx-check: %s\r\n\r\n" % NAME.encode())
            return
        if self.path in ("/204", "/304"):
            self.send_response(int(self.path[1:]))
            self.end_headers()
            return
        if self.path == "/close":
            self.send(200, "%s closing\n" % NAME, [("connection", "close")])
            self.close_connection = True
            return
        if self.path.startswith("/header/"):
            values = self.headers.get_all(self.path[8:]) or ["-"]
            self.send(200, "".join(v + "\n" for v in values))
            return
        if self.path.startswith("/bighead/"):
            self.send(200, "%s bighead\n" % NAME, [("x-big", "b" * int(self.path[9:]))])
            return
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/hold":
            for _ in range(3000):
                try:
                    open(LOG + ".release").close()
                    break
                except FileNotFoundError:
                    time.sleep(0.01)
        if self.path == "/upgrade":
            self.send_response(101)
            self.send_header("connection", "upgrade")
            self.send_header("upgrade", "echo")
            self.end_headers()
            self.wfile.flush()
            while True:
                got = self.connection.recv(4096)
                if not got:
                    break
                self.connection.sendall(got.upper())
            self.close_connection = True
            return
        self.send(200, "%s %s %s host=%s attempt=%s len=%d\n" % (
            NAME, self.command, self.path, self.headers.get("host"), attempt, len(data)))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


Server((HOST, PORT), Handler).serve_forever()
