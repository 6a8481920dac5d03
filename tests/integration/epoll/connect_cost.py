# connect_cost.py N SERVICE PORT ROUNDS: the time inside a non-blocking
# connect() to a meshed service whose attempt cannot finish at once (a
# black hole: the engine path, as every connect off loopback), with N
# descriptors registered in the program's epoll set. Prints the median and
# p90 in microseconds: "N=10000 median 15 p90 27".
import os, select, socket, statistics, sys, time

n, service, port, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ep = select.epoll()
fds = [os.eventfd(0) for _ in range(n)]
for f in fds:
    ep.register(f, select.EPOLLIN)
times = []
for i in range(rounds):
    s = socket.socket()
    s.setblocking(False)
    ep.register(s.fileno(), select.EPOLLOUT)
    t = time.perf_counter()
    try:
        s.connect((service, port))
    except BlockingIOError:
        pass
    times.append((time.perf_counter() - t) * 1e6)
    ep.unregister(s.fileno())
    s.close()
times.sort()
print("N=%d median %.0f p90 %.0f" % (n, statistics.median(times), times[int(rounds * 0.9)]))
