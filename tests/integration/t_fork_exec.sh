# A child after fork and a program after exec resolve the same VIP and reach
# the service; the child balances on its own.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
start_backends "$port"
export MESHIM_SERVICES="orders=127.0.0.2:$port,127.0.0.3:$port,127.0.0.4:$port"

shimmed python3 - "$port" > "$TMP/out" <<'PY' || fail "fork/exec"
import os, socket, subprocess, sys, urllib.request
port = sys.argv[1]
def fetch():
    return urllib.request.urlopen(f"http://orders:{port}/who", timeout=5).read().decode().strip()
parent_vip = socket.gethostbyname("orders")
print("parent", parent_vip, fetch())
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    msg = f"child {socket.gethostbyname('orders')} {fetch()} {fetch()} {fetch()}"
    os.write(w, msg.encode())
    os._exit(0)
os.close(w)
print(os.read(r, 200).decode())
_, status = os.waitpid(pid, 0)
assert status == 0, status
# exec: the shim loads again from the environment
out = subprocess.run(["getent", "hosts", "orders"], capture_output=True, text=True, check=True)
print("exec", out.stdout.split()[0])
fetch = f"import urllib.request; print(urllib.request.urlopen('http://orders:{port}/who', timeout=5).read().decode().strip())"
out = subprocess.run([sys.executable, "-c", fetch], capture_output=True, text=True, check=True)
print("exec-python", out.stdout.strip())
PY
cat "$TMP/out"
vip=$(awk '$1 == "parent" {print $2}' "$TMP/out")
[ "$(awk '$1 == "child" {print $2}' "$TMP/out")" = "$vip" ] || fail "child resolved another VIP"
[ "$(awk '$1 == "exec" {print $2}' "$TMP/out")" = "$vip" ] || fail "exec'd getent resolved another VIP"
# The child made three connections with its own balancer: all answered.
[ "$(awk '$1 == "child" {print NF}' "$TMP/out")" -eq 5 ] || fail "child fetches failed"
grep -q '^exec-python backend-[234]$' "$TMP/out" || fail "exec'd python3 did not reach the service"
ok "fork and exec: same VIP $vip, both reach orders"

# A fork while a non-blocking connect goes on in the engine (its endpoint a
# black hole: it is dialing until connect_timeout, 1 s). The engine puts its
# outcome on the parent's number only: the parent's connect times out as
# ever. The child cannot have it: its poll ends with ERR|HUP and SO_ERROR
# ECONNABORTED once the parent's dial is over. Before, the child's copy of
# the engine's end of the placeholder kept both ends from ever seeing the
# failure: the parent's poll and the child's waited forever (20 s here).
hole_port=$(free_port)
start_black_hole 127.0.0.5 "$hole_port"
MESHIM_SERVICES="slow=127.0.0.5:$hole_port" \
    shimmed python3 - "$hole_port" > "$TMP/inflight.out" 2> "$TMP/inflight.err" <<'PY' ||
import errno, os, select, socket, sys
def outcome(s):
    p = select.poll()
    p.register(s, select.POLLOUT)
    ev = p.poll(20000)
    if not ev:
        return "hung"
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return "%s %s" % ("ERR|HUP" if ev[0][1] & (select.POLLERR | select.POLLHUP) else "OUT",
                      errno.errorcode.get(err, err))
s = socket.socket()
s.setblocking(False)
assert s.connect_ex(("slow", int(sys.argv[1]))) == errno.EINPROGRESS
pid = os.fork()
if pid == 0:
    os.write(1, ("child %s\n" % outcome(s)).encode())    # one write each: both end at once
    os._exit(0)
os.write(1, ("parent %s\n" % outcome(s)).encode())
os.waitpid(pid, 0)
PY
    fail "fork during a connect: $(cat "$TMP/inflight.err")"
grep -qx "child ERR|HUP ECONNABORTED" "$TMP/inflight.out" || fail "the child of a fork during a connect: $(cat "$TMP/inflight.out")"
grep -qx "parent ERR|HUP ETIMEDOUT" "$TMP/inflight.out" || fail "the parent's connect: $(cat "$TMP/inflight.out")"
ok "a fork while the connect went on in the engine: the parent's timed out as ever, the child's descriptor ended (ECONNABORTED)"
