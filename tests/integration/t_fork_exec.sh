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
