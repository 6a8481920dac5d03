import os, socket, select, time, sys, errno
s = socket.socket(); s.setblocking(False)
r = s.connect_ex(('slow', 18605))
pid = os.fork()
if pid == 0:
    t = time.time()
    p = select.poll(); p.register(s, select.POLLOUT)
    ev = p.poll(5000)
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    print("child poll:", ev, "after", round(time.time()-t, 2), "s; SO_ERROR", errno.errorcode.get(err, err), flush=True)
    os._exit(0)
p = select.poll(); p.register(s, select.POLLOUT); ev = p.poll(5000)
s.setblocking(True); s.sendall(b'yo'); print("parent poll", ev, "got", s.recv(10), flush=True)
os.waitpid(pid, 0)
