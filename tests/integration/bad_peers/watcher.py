# The meshed application under test: one long-lived mTLS connection to the
# echo server pings every 5 ms and records its round trips by phase, while
# the driver (stdin) names the phase or has it dial a bad server.
import errno, json, socket, sys, threading, time

port = int(sys.argv[1])
phase, lat, errors, stop = "base", {}, [], False

def ping():
    try:
        s = socket.create_connection(("orders", port), timeout=10)
        msg = b"p" * 63 + b"\n"
        while not stop:
            t = time.monotonic()
            s.sendall(msg)
            got = b""
            while len(got) < 64:
                d = s.recv(64 - len(got))
                if not d:
                    raise OSError("the ping connection was closed")
                got += d
            lat.setdefault(phase, []).append(time.monotonic() - t)
            time.sleep(0.005)
    except Exception as e:
        errors.append("ping: %r" % e)

def dial(name):
    t = time.monotonic()
    try:
        s = socket.create_connection((name, port), timeout=10)
    except OSError as e:
        return "connect-error %s %.2f" % (errno.errorcode.get(e.errno, e), time.monotonic() - t)
    try:
        s.sendall(b"hello\n")
        d = s.recv(100)
        return ("eof" if not d else "data") + " %.2f" % (time.monotonic() - t)
    except OSError as e:
        return "read-error %s %.2f" % (errno.errorcode.get(e.errno, e), time.monotonic() - t)
    finally:
        s.close()

pinger = threading.Thread(target=ping)
pinger.start()
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "phase":
        phase = arg
        out = "ok"
    elif cmd == "count":
        out = str(len(lat.get(phase, [])))
    elif cmd == "dial":
        out = dial(arg)
    else:
        break
    print(out, flush=True)
stop = True
pinger.join()
res = {}
for p, v in lat.items():
    v.sort()
    res[p] = {"n": len(v), "p50": v[len(v) // 2], "p99": v[len(v) * 99 // 100], "max": v[-1]}
print(json.dumps({"phases": res, "errors": errors}), flush=True)
