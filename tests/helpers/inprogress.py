#!/usr/bin/env python3
"""inprogress.py — does a non-blocking connect on 127.0.0.1 take a round
trip here? Exit 0 when connect() answers EINPROGRESS (lo is delayed, as
make test-rtt needs), 1 when it settles inside the call."""
import errno
import socket
import sys

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
c = socket.socket()
c.setblocking(False)
rc = c.connect_ex(srv.getsockname())
sys.exit(0 if rc == errno.EINPROGRESS else 1)
