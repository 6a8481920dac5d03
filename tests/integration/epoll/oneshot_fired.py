# oneshot_fired.py SERVICE PORT: a one-shot registration that has already
# fired (a fresh socket is writable-and-hung-up) is disarmed; connect() then
# goes on in the engine (first attempt black-holed, the retry connects).
# The swaps must keep it disarmed: no event until the program re-arms it,
# then exactly the connect's. Prints "ok" or what went wrong.
import select, socket, sys

service, port = sys.argv[1], int(sys.argv[2])
ep = select.epoll()
s = socket.socket()
s.setblocking(False)
ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLONESHOT)
assert ep.poll(0), "a fresh socket should report EPOLLOUT|EPOLLHUP once"
try:
    s.connect((service, port))
    sys.exit("connect settled at once: the test needs the engine path")
except BlockingIOError:
    pass
early = ep.poll(1.5)              # the retry connects well inside this
if early:
    sys.exit("an event on a disarmed one-shot registration: %r" % early)
ep.modify(s.fileno(), select.EPOLLOUT | select.EPOLLONESHOT)
got = ep.poll(5)
err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
if len(got) != 1 or not got[0][1] & select.EPOLLOUT or err:
    sys.exit("after re-arming: %r, SO_ERROR %d" % (got, err))
print("ok")
