# udp_batch.py HOST PORT: sends "echo batch 0" and "echo batch 1" to
# HOST:PORT in one sendmmsg() and reads the two answers with recvmmsg()
# (libc's own calls, through ctypes: python has no binding for them).
# Prints each answer with the address and port it came from. Fails if the
# batch's headers do not hold the caller's address after the call.
import ctypes
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)    # the global scope: LD_PRELOAD's symbols first


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]


class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]


class sockaddr_in(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint8 * 4), ("zero", ctypes.c_uint8 * 8)]


def batch(names, bufs):
    iovs = [iovec(ctypes.cast(b, ctypes.c_void_p), len(b)) for b in bufs]
    vec = (mmsghdr * len(bufs))()
    for i in range(len(bufs)):
        vec[i].hdr = msghdr(ctypes.cast(ctypes.pointer(names[i]), ctypes.c_void_p), ctypes.sizeof(names[i]),
                            ctypes.pointer(iovs[i]), 1, None, 0, 0)
    return vec, iovs


ip = socket.gethostbyname(sys.argv[1])
port = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)

to = sockaddr_in(socket.AF_INET, socket.htons(port), (ctypes.c_uint8 * 4)(*socket.inet_aton(ip)))
out = [ctypes.create_string_buffer(b"echo batch %d" % i, 12) for i in range(2)]
vec, keep = batch([to, to], out)
n = libc.sendmmsg(s.fileno(), vec, 2, 0)
if n != 2:
    sys.exit("sendmmsg: %d, errno %d" % (n, ctypes.get_errno()))
if vec[1].hdr.name != ctypes.addressof(to) or vec[1].hdr.namelen != ctypes.sizeof(to):
    sys.exit("sendmmsg left another address in the caller's header")

srcs = [sockaddr_in() for _ in range(2)]
into = [ctypes.create_string_buffer(64) for _ in range(2)]
rvec, rkeep = batch(srcs, into)
got = 0
while got < 2:
    s.recv(1, socket.MSG_PEEK)                  # waits, bounded by the timeout, for one
    n = libc.recvmmsg(s.fileno(), ctypes.byref(rvec, got * ctypes.sizeof(mmsghdr)), 2 - got,
                      socket.MSG_DONTWAIT, None)
    if n <= 0:
        sys.exit("recvmmsg: %d, errno %d" % (n, ctypes.get_errno()))
    got += n
for i in range(2):
    text = into[i].raw[:rvec[i].len].decode()
    print(text, socket.inet_ntoa(bytes(srcs[i].addr)), socket.ntohs(srcs[i].port))
