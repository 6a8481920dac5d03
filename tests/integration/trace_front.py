"""A service that calls another while it serves, and forwards no header: what
trace_propagation = thread is for (t_tracing_thread.sh).

    trace_front.py threads HOST PORT UPSTREAM_URL
        python3's ThreadingHTTPServer, keep-alive. GET /call/ID sleeps ID
        % 7 ms (so that requests overlap), then GETs UPSTREAM_URL on a
        connection from a pool shared by every thread (a connection serves
        one thread's request, then another's), and answers with what the
        upstream answered (the traceparent it was sent).

    trace_front.py loop HOST PORT UPSTREAM_URL
        One thread serving many connections by turns, as an event loop
        does: it reads the heads of two requests on two connections, then
        calls the upstream, then answers both with what it answered. No
        context may ride on that call: the thread serves two requests.
"""
import http.client
import http.server
import queue
import socket
import sys
import time
import urllib.parse

MODE, HOST, PORT, UPSTREAM = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
up = urllib.parse.urlsplit(UPSTREAM)
pool = queue.LifoQueue()


def call_upstream():
    try:
        c = pool.get_nowait()
    except queue.Empty:
        c = http.client.HTTPConnection(up.hostname, up.port, timeout=10)
    c.request("GET", up.path)           # no traceparent: the application forwards nothing
    r = c.getresponse()
    body = r.read()
    if r.status == 200 and not r.will_close:
        pool.put(c)
    else:
        c.close()
    return body


class Front(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/call/"):
            time.sleep(int(self.path[6:] or 0) % 7 / 1000)
            body = call_upstream()
        else:
            body = b"front\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(4096)
        if not more:
            raise OSError("the client went away")
        data += more
    return data


def loop():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, PORT))
    ls.listen(16)
    while True:
        served = []
        while len(served) < 2:
            c, _ = ls.accept()
            try:
                read_head(c)
                served.append(c)
            except OSError:
                c.close()           # a readiness check: connected, said nothing
        body = call_upstream()
        for c in served:
            c.sendall(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            c.close()


if MODE == "threads":
    http.server.ThreadingHTTPServer((HOST, PORT), Front).serve_forever()
else:
    loop()
