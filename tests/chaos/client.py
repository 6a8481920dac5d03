# A meshed chaos client: one connection per request (so every request is
# also a connect the mesh must get right), GET / HTTP/1.0, the whole answer
# read with a 2 s limit. asyncio with N workers, or blocking with one.
# Writes one JSON line per request to OUT: t (ms since the epoch, when it
# ended), what
# ("ok" | "connect" = the connect failed | "request" = it failed after),
# connect_ms.
import asyncio, errno, json, os, socket, sys, time

mode, host, port, seconds, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
workers = int(sys.argv[6]) if len(sys.argv) > 6 else 8
stop_file = sys.argv[7] if len(sys.argv) > 7 else None
start = time.monotonic()

def running():   # until the run says stop (a file), SECONDS at most
    return time.monotonic() - start < seconds and not (stop_file and os.path.exists(stop_file))
log = open(out, "w", buffering=1)

def record(what, connect_s, err=None):
    log.write(json.dumps({"t": int(time.time() * 1000), "what": what, "connect_ms": round(connect_s * 1e3, 2),
                          "err": errno.errorcode.get(getattr(err, "errno", None), type(err).__name__) if err else None}) + "\n")

async def one_async():
    t0 = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError) as e:
        record("connect", time.monotonic() - t0, e)
        await asyncio.sleep(0.05)
        return
    c = time.monotonic() - t0
    try:
        w.write(b"GET / HTTP/1.0\r\nHost: orders\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 2)
        record("ok" if data.startswith(b"HTTP/1.1 200") else "request", c)
    except (OSError, asyncio.TimeoutError) as e:
        record("request", c, e)
    finally:
        w.close()

async def worker():
    while running():
        await one_async()
        await asyncio.sleep(0.01)

def one_blocking():
    t0 = time.monotonic()
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        record("connect", time.monotonic() - t0, e)
        time.sleep(0.05)
        return
    c = time.monotonic() - t0
    try:
        s.settimeout(2)
        s.sendall(b"GET / HTTP/1.0\r\nHost: orders\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        record("ok" if data.startswith(b"HTTP/1.1 200") else "request", c)
    except OSError as e:
        record("request", c, e)
    finally:
        s.close()

if mode == "asyncio":
    async def main():
        await asyncio.gather(*(worker() for _ in range(workers)))
    asyncio.run(main())
else:
    while running():
        one_blocking()
        time.sleep(0.01)
