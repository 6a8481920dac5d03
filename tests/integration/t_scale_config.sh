# 10,000 services with 100,000 endpoints in one INI (issue 18, part 3): a
# 2 MB file (over the old 1 MiB limit) that meshim check accepts and a
# meshed python3 uses (the last service reached by name); checks across
# services still catch a host or an address given twice and a section
# repeated; and loading grows linearly: meshim check on 10,000 services
# takes less than 30 times as long as on 1,000 (best of 3 each; a
# quadratic check, as before, took 100 times; a ratio of one run, never a
# time). bench/scale has the figures.
. "$(dirname "$0")/lib.sh"
port=$(free_port)
start_backend 3 "$port"
wait_port 127.0.0.3 "$port"

# ini FILE N [EXTRA]: N services of 10 endpoints, then target, then EXTRA.
ini() {
    python3 - "$@" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
extra = sys.argv[4] if len(sys.argv) > 4 else ""
with open(path, "w") as f:
    f.write("[meshim]\nlog_level = warn\n")
    for i in range(n):
        eps = ", ".join(f"10.{i >> 8 & 255}.{i & 255}.{j + 1}:8080" for j in range(10))
        f.write(f"[service:svc{i}]\nendpoints = {eps}\n")
    f.write(f"[service:target]\nendpoints = 127.0.0.3:{sys.argv[3]}\n{extra}")
PY
}
ini "$TMP/big.ini" 10000 "$port"
[ "$(stat -c %s "$TMP/big.ini")" -gt $((1 << 20)) ] || fail "the INI is not over 1 MiB"
out=$("$MESHIM_CMD" check -c "$TMP/big.ini" 2>&1) || fail "meshim check: $(tail -2 <<< "$out")"
[ "$(grep -c '^service ' <<< "$out")" = 10001 ] || fail "meshim check listed $(grep -c '^service ' <<< "$out") services"
got=$(MESHIM_CONFIG=$TMP/big.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 -c "
import socket, urllib.request
print(socket.gethostbyname('target').startswith('127.77.'),
      urllib.request.urlopen('http://target:$port/who', timeout=10).read().decode().strip())" 2>&1) ||
    fail "python3 with 10,000 services: $got"
[ "$got" = "True backend-3" ] || fail "python3 with 10,000 services: $got"
ok "10,000 services and 100,000 endpoints ($(( $(stat -c %s "$TMP/big.ini") / 1024 )) KiB): meshim check lists them, python3 reaches the last by name"

ini "$TMP/dup.ini" 10000 "$port" $'hosts = target, svc77\naddresses = 10.96.0.1\n[service:x]\nendpoints = 127.0.0.2\naddresses = 10.96.0.1:80\n[service:svc4242]\nendpoints = 127.0.0.2\n'
out=$("$MESHIM_CMD" check -c "$TMP/dup.ini" 2>&1) && fail "duplicates in 10,000 services passed"
grep -q 'hosts: "svc77" is already a host of \[service:svc77\]' <<< "$out" || fail "host twice not seen: $out"
grep -q 'addresses: 10.96.0.1:80 is already an address of \[service:target\]' <<< "$out" ||
    fail "address twice not seen: $out"
grep -q '\[service:svc4242\]: section appears twice' <<< "$out" || fail "section twice not seen: $out"
ok "among 10,000 services a host, an address and a section given twice are refused"

# best FILE: the best of 3 wall times of meshim check on FILE, in seconds.
best() {
    python3 - "$MESHIM_CMD" "$1" <<'PY'
import subprocess, sys, time
t = []
for _ in range(3):
    a = time.perf_counter()
    subprocess.run([sys.argv[1], "check", "-c", sys.argv[2]], stdout=subprocess.DEVNULL, check=True)
    t.append(time.perf_counter() - a)
print(min(t))
PY
}
ini "$TMP/1k.ini" 1000 "$port"
t1=$(best "$TMP/1k.ini"); t10=$(best "$TMP/big.ini")
ratio=$(python3 -c "print(round($t10 / $t1, 1))")
[ "$(python3 -c "print($t10 < 30 * $t1)")" = True ] ||
    fail "meshim check: 1,000 services ${t1}s, 10,000 ${t10}s: $ratio times (quadratic?)"
ok "meshim check grows linearly: 10,000 services take $ratio times 1,000"
