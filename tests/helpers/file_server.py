"""python3's own http.server serving a folder, as `python3 -m http.server
--bind HOST --directory DIR PORT` does, with a listen queue of 128.

    file_server.py HOST PORT DIR

Why not `-m http.server` itself: socketserver listens with a queue of 5.
Under a load test (nginx's 4 workers proxying wrk's 32 connections, one new
upstream connection a request) the queue overflows; the kernel then drops
the SYN and the client resends it after a second, which is connect_timeout
itself. A meshed client rightly counts that as a timed-out attempt, and a
slow machine can see three in a row and answer 502: the test would fail for
the backend's queue, not for the mesh.
"""
import functools
import http.server
import sys


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128


host, port, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
with Server((host, port), handler) as server:
    server.serve_forever()
