# Plays the bad peers (unmeshed) against a meshed server and a meshed
# client, and checks what the issue promises: an error on the bad
# connection only, the watcher's latency kept, memory back after.
import asyncio, json, os, re, socket, ssl, subprocess, sys, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpers"))
import tlshello  # noqa: E402  (tests/helpers)

port, server_pid, pki, log, bad_ports = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:8]
watcher_cmd = sys.argv[8:]
SERVER = ("127.0.0.2", port)
failures = []

def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)

def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))

TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}

UNIX_ROW = re.compile(r"[0-9a-fA-F]+: [0-9A-F]+ [0-9A-F]+ [0-9A-F]+ [0-9A-F]+ [0-9A-F]+ +([0-9]+)")

def sockets(pid):
    """inode -> what the socket is (TCP with its ports and state, or unix)."""
    kinds = {}
    for proto in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, proto), errors="replace") as f:
                for row in list(f)[1:]:
                    c = row.split()
                    kinds[c[9]] = "%s %s->%s %s" % (proto, int(c[1].split(":")[1], 16),
                                                     int(c[2].split(":")[1], 16), TCP_STATES.get(c[3], c[3]))
        except OSError:
            pass
    try:
        # Abstract names (the shim's pairs have some) are bytes, not UTF-8,
        # and may hold a space or a newline: a row is known by its head,
        # "Num: RefCount Protocol Flags Type St Inode", never by its columns
        # (a name's newline makes rows with fewer).
        with open("/proc/%d/net/unix" % pid, errors="replace") as f:
            for row in f:
                m = UNIX_ROW.match(row)
                if m:
                    kinds.setdefault(m.group(1), "unix")
    except OSError:
        pass
    return kinds

def fd_list(pid):
    """What each of PID's descriptors is, for a failure's message."""
    out, kinds = [], sockets(pid)
    for n in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            what = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        if what.startswith("socket:["):
            what += "(%s)" % kinds.get(what[8:-1], "?")
        out.append("%s=%s" % (n, what))
    return " ".join(out)

def lines(word):
    """The application's whole log lines that start with word. A line the
    server is still writing is left out: read half done ("gone" without
    how and how much), it was counted as an end and then failed the check
    of how each connection ended."""
    with open(log) as f:
        return [l.split() for l in f if l.endswith("\n") and l.startswith(word)]

def conns():
    return len(lines("conn"))

def gone():
    return len(lines("gone"))

def wait_for(cond, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    check(False, what)
    return False

def client_ctx():
    return tlshello.client_ctx(pki)

# ---- the good clients (the warm-up and the storm) ----------------------
# Each client's ClientHello is made before it connects and sent the
# moment it is connected: the server gives a client 3 s for its first
# byte, and asyncio making 1,000 hellos after 1,000 connects took longer
# than that on a busy 2-core machine (the server then rightly cut them).
async def good_clients(n, ctx):
    """N TLS clients at once, each sending a line and reading it back:
    True for each one served, else what went wrong."""
    loop = asyncio.get_running_loop()
    made = [tlshello.hello_first(ctx) for _ in range(n)]
    clients = []
    for obj, inc, out, hello in made:
        s = socket.create_connection(SERVER, timeout=30)
        s.sendall(hello)
        s.setblocking(False)
        clients.append((s, obj, inc, out))
    async def feed(s, inc):
        data = await asyncio.wait_for(loop.sock_recv(s, 65536), 30)
        if not data:
            raise EOFError("the server closed the connection")
        inc.write(data)
    async def finish(s, obj, inc, out):
        try:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                if out.pending:
                    await loop.sock_sendall(s, out.read())
                await feed(s, inc)
            obj.write(b"hi\n")
            await loop.sock_sendall(s, out.read())
            got = b""
            while not got.endswith(b"\n"):
                try:
                    piece = obj.read(100)
                except ssl.SSLWantReadError:
                    await feed(s, inc)
                    continue
                if not piece:
                    break
                got += piece
            return got == b"hi\n"
        finally:
            s.close()
    res = await asyncio.gather(*(finish(*c) for c in clients), return_exceptions=True)
    return [x if isinstance(x, bool) else repr(x) for x in res]

# ---- the bad servers the watcher dials (127.0.0.3) --------------------
held = []
def bad_server(kind, p):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.3", p))
    ls.listen(64)
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki + "/ca.pem")
    sctx.load_cert_chain(pki + "/orders.pem", pki + "/orders.key")
    sctx.verify_mode = ssl.CERT_REQUIRED
    def run():
        while True:
            c, _ = ls.accept()
            if kind == "garbage":           # answers a ClientHello with noise
                c.recv(4096)
                c.sendall(os.urandom(2048))
                c.close()
            elif kind == "silent":          # never says a word
                held.append(c)
            else:                           # a real handshake, then a reset
                try:
                    t = sctx.wrap_socket(c, server_side=True)
                    t.recv(100)
                    t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    t.close()
                except OSError:
                    c.close()
    threading.Thread(target=run, daemon=True).start()

for kind, p in zip(("garbage", "silent", "resetter"), bad_ports):
    bad_server(kind, int(p))

watcher = subprocess.Popen(watcher_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def ask(cmd):
    watcher.stdin.write(cmd + "\n")
    watcher.stdin.flush()
    return watcher.stdout.readline().strip()

def phase(name):
    ask("phase " + name)

def settle(name, samples=100):
    """Let the watcher gather SAMPLES round trips in phase NAME (20 s at most)."""
    wait_for(lambda: int(ask("count") or 0) >= samples, 20, "watcher: %d samples in %s" % (samples, name))

storm_seconds = 0.0     # how long the 1,000 handshakes took (the storm's bound)
try:
    # --- base line, and the server warmed (its TLS state, its arenas) ---
    settle("base")
    warm = asyncio.run(good_clients(100, client_ctx()))
    check(all(x is True for x in warm), "warm-up: 100 good clients served (%s)" % [x for x in warm if x is not True][:3])
    wait_for(lambda: gone() == conns() - 1, 20, "warm-up connections ended in the application")
    base_fds, base_rss = fds(server_pid), rss_kb(server_pid)
    base_list = fd_list(server_pid)

    # --- garbage instead of a ClientHello, and garbage after one ---------
    phase("garbage-clients")
    before = conns()
    def garbage_client(after_hello):
        s = socket.create_connection(SERVER, timeout=15)
        try:
            if after_hello:                 # a real ClientHello, then noise
                s.sendall(tlshello.hello_first(client_ctx())[3])
                s.recv(65536)
            s.sendall(os.urandom(1024))
            while s.recv(65536):
                pass
            return True                     # the server closed it
        except ConnectionResetError:
            return True
        except OSError as e:
            return repr(e)
        finally:
            s.close()
    res = []
    ths = [threading.Thread(target=lambda i=i: res.append(garbage_client(i % 2 == 1))) for i in range(200)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    check(res.count(True) == 200, "200 garbage clients closed by the server (%s)" % [x for x in res if x is not True][:3])
    settle("garbage-clients")
    # The application's accept() does not wait for handshakes: it was given
    # each of them, and each ended before a byte of it arrived.
    wait_for(lambda: gone() == conns() - 1, 20, "the garbage clients' connections ended in the application")
    ends = lines("gone")[-(conns() - before):]
    check(all(e[1:] == ["eof", "0"] for e in ends), "garbage reached the application: %s" % [e for e in ends if e[1:] != ["eof", "0"]][:3])

    # --- resets mid-relay -------------------------------------------------
    phase("resets")
    before, gone_before = conns(), gone()
    for _ in range(20):
        t = client_ctx().wrap_socket(socket.create_connection(SERVER, timeout=15))
        t.sendall(b"one\n")
        check(t.recv(10) == b"one\n", "reset client: echo before the reset")
        t.sendall(b"half a li")
        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        t.close()
    wait_for(lambda: gone() - gone_before == 20, 20, "the application saw the 20 reset connections end")
    check(conns() - before == 20, "20 reset clients reached the application")
    settle("resets")

    # --- the watcher dials bad servers ------------------------------------
    phase("bad-servers")
    outcomes = {k: ask("dial " + k) for k in ("garbage", "silent", "resetter")}
    print("bad servers, as the meshed client saw them:", outcomes, flush=True)
    check(outcomes["garbage"].startswith("connect-error ECONNRESET"), "garbage server: %s" % outcomes["garbage"])
    # A server that accepts and says nothing may be a program that has not
    # accepted yet (paused): with no other endpoint the connect is reported
    # at connect_timeout and the connection ends 10 s later (t_unaccepted).
    check(outcomes["silent"].split()[0] in ("eof", "read-error"), "silent server: %s" % outcomes["silent"])
    check(outcomes["resetter"].split()[0] in ("eof", "read-error"), "resetting server: %s" % outcomes["resetter"])
    settle("bad-servers", 50)

    # --- 1,000 handshakes at once -----------------------------------------
    phase("storm")
    before, t0 = conns(), time.monotonic()
    storm = asyncio.run(good_clients(1000, client_ctx()))
    took = storm_seconds = time.monotonic() - t0
    okn = storm.count(True)
    errs = {}
    for x in storm:
        if x is not True:
            errs[str(x)[:60]] = errs.get(str(x)[:60], 0) + 1
    print("1000 handshakes at once: %d served in %.1f s; errors %s; peak rss %d kB" % (okn, took, errs, rss_kb(server_pid)), flush=True)
    check(okn == 1000, "1000 clients at once: %d served, errors %s" % (okn, errs))
    settle("storm", 20)

    # --- after: descriptors and memory back --------------------------------
    phase("after")
    wait_for(lambda: gone() == conns() - 1, 30, "storm connections ended in the application")
    if not wait_for(lambda: fds(server_pid) <= base_fds, 30, "server descriptors back to %d (now %d)" % (base_fds, fds(server_pid))):
        now_list = fd_list(server_pid)
        print("descriptors before: %s\ndescriptors now: %s" % (base_list, now_list), flush=True)
        # Each new socket as ss sees it: its peer, and who holds that end.
        seen = subprocess.run(["ss", "-xpnea"], capture_output=True, encoding="utf-8", errors="replace").stdout.splitlines()
        for fd in set(now_list.split()) - set(base_list.split()):
            if "socket:[" in fd:
                inode = fd.split("socket:[")[1].split("]")[0]
                print("%s: %s" % (fd, [l for l in seen if " %s " % inode in l][:4]), flush=True)
                try:        # its file flags: what made it (socketpair, accept) and who set them
                    with open("/proc/%d/fdinfo/%s" % (server_pid, fd.split("=")[0])) as f:
                        print("  fdinfo:", " ".join(f.read().split()), flush=True)
                except OSError:
                    pass
    settle("after")
    after_rss = rss_kb(server_pid)
    print("server rss: %d kB after warm-up, %d kB after the storm" % (base_rss, after_rss), flush=True)
    # What 1,000 connections' TLS state and buffers took goes back: less
    # than 16 kB a connection stays (ASan's allocator keeps freed memory
    # in quarantine by design: there the figure is only shown).
    if not os.environ.get("BP_ASAN"):
        check(after_rss - base_rss < 16 * 1000, "server memory after the storm: %d kB more than before" % (after_rss - base_rss))
finally:
    try:
        stats = json.loads(ask("stats") or watcher.stdout.readline())
    except Exception as e:
        stats = {"phases": {}, "errors": ["watcher: %r" % e]}
    watcher.kill()
    watcher.wait()

print("watcher round trips (ms):", flush=True)
for p, v in stats["phases"].items():
    print("  %-16s n=%4d p50=%.2f p99=%.2f max=%.2f" % (p, v["n"], v["p50"] * 1e3, v["p99"] * 1e3, v["max"] * 1e3), flush=True)
check(not stats["errors"], "watcher: %s" % stats["errors"])
# No round trip of the open connection waits on a bad peer: every peer
# timeout is 1 s or more (connect_timeout, first byte, handshake). The
# storm has no bad peer: 1,000 good handshakes, then 1,000 connections the
# server (one asyncio thread, also the ping's echo) accepts, greets and
# sees end. Its bound is that the connection never waits for a large part
# of the storm, a third of it (at least 1 s), however long the machine
# makes it: 4 to 8 s here, 8 to 9 s under ASan. A fixed 1 s was a bound on
# the machine's speed: a clean run's round trip reached 0.997 s (storm of
# 5.6 s), one beside other work 1.25 s (8.1 s); a loop that waited for
# each handshake would hold the ping for most of the storm.
for p, v in stats["phases"].items():
    bound = max(1.0, storm_seconds / 3) if p == "storm" else 1.0
    check(v["max"] < bound, "watcher: a round trip of %.2f s in phase %s" % (v["max"], p))
json.dump({"phases": stats["phases"], "base_rss": base_rss, "after_rss": after_rss}, open(os.environ.get("BP_OUT", "/dev/null"), "w"))
sys.exit(1 if failures else 0)
