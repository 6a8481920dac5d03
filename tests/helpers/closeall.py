#!/usr/bin/env python3
# tests/helpers/closeall.py HOST PORT DIR: a program that closes every
# descriptor it did not open, mid-life, as daemons do after fork. Run under
# the shim with HOST an mTLS service (so that the engine and its descriptors
# are live): it calls http://HOST:PORT/ (a page starting "hello"), closes
# every descriptor from 3 up, checks that the engine's epoll set and
# eventfd are still there, calls again and writes files in DIR whose
# contents it checks; dup2 onto the engine's descriptor must fail with
# EBUSY; then its fork child does the same. Prints "ok".
import errno, gc, os, socket, sys, urllib.request
host, port, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def get():
    return urllib.request.urlopen("http://%s:%d/" % (host, port), timeout=10).read()
def own():    # the engine's epoll set and wake-up eventfd (the program has none)
    fds = []
    for f in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + f) in ("anon_inode:[eventpoll]", "anon_inode:[eventfd]"):
                fds.append(int(f))
        except OSError:
            pass
    return sorted(fds)
def files_then_check(tag):
    fs = [open("%s/%s.%d" % (tmp, tag, i), "w+") for i in range(8)]
    for _ in range(10):
        assert get().startswith(b"hello")
    for i, f in enumerate(fs):
        f.write("%s %d\n" % (tag, i)); f.flush(); f.seek(0)
        got = f.read()
        assert got == "%s %d\n" % (tag, i), "%s.%d holds %r" % (tag, i, got)
        f.close()
assert get().startswith(b"hello")
ours = own()
assert len(ours) == 2, "not the engine's two descriptors: %s" % ours
gc.collect()
os.closerange(3, 1 << 20)               # close_range(3, ...) in glibc 2.34+
assert set(own()) == set(ours), "the shim's descriptors went: %s" % own()
files_then_check("after")
try:
    os.dup2(1, ours[0])
    sys.exit("dup2 onto the shim's descriptor %d succeeded" % ours[0])
except OSError as e:
    assert e.errno == errno.EBUSY, e
assert get().startswith(b"hello")
pid = os.fork()
if pid == 0:
    try:
        os.closerange(3, 1 << 20)
        files_then_check("child")
        os._exit(0)
    except BaseException as e:
        print("child:", repr(e), file=sys.stderr)
        os._exit(1)
_, status = os.waitpid(pid, 0)
assert status == 0, "the child failed"
files_then_check("parent")
print("ok")
