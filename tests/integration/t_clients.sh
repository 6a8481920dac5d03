# Unmodified curl, wget and python3 (urllib with a timeout, and asyncio)
# reach "orders" by name and spread over all three backends.
. "$(dirname "$0")/lib.sh"
shims curl wget python3

port=$(free_port)
start_backends "$port"
export MESHIM_SERVICES="orders=127.0.0.2:$port,127.0.0.3:$port,127.0.0.4:$port"

for i in $(seq 1 30); do
    shimmed curl -sS --max-time 5 "http://orders:$port/who" >> "$TMP/curl.out" || fail "curl request $i failed"
done
[ "$(wc -l < "$TMP/curl.out")" -eq 30 ] || fail "curl: $(wc -l < "$TMP/curl.out") of 30 answers"
assert_spread "$TMP/curl.out" 1 "30 curl processes"

for i in $(seq 1 30); do
    shimmed wget -q -T 5 -O - "http://orders:$port/who" >> "$TMP/wget.out" || fail "wget request $i failed"
done
assert_spread "$TMP/wget.out" 1 "30 wget processes"

# One process, round robin: exactly even.
cat > "$TMP/rr.ini" <<INI
[service:orders]
endpoints = 127.0.0.2:$port, 127.0.0.3:$port, 127.0.0.4:$port
lb = round_robin
INI
MESHIM_CONFIG=$TMP/rr.ini MESHIM_SERVICES= shimmed python3 - "$port" > "$TMP/urllib.out" <<'PY' || fail "python urllib"
import sys, urllib.request
port = sys.argv[1]
for _ in range(30):
    # timeout= makes CPython use a non-blocking connect with poll
    print(urllib.request.urlopen(f"http://orders:{port}/who", timeout=5).read().decode().strip())
PY
for i in 2 3 4; do
    [ "$(count "backend-$i" "$TMP/urllib.out")" -eq 10 ] || fail "urllib round robin not even: $(sort "$TMP/urllib.out" | uniq -c | tr '\n' ' ')"
done
ok "python urllib (timeout=5), one process, round robin: 10/10/10"

shimmed python3 - "$port" > "$TMP/asyncio.out" <<'PY' || fail "python asyncio"
import asyncio, sys
port = int(sys.argv[1])
async def get():
    reader, writer = await asyncio.open_connection("orders", port)
    writer.write(b"GET /who HTTP/1.0\r\nHost: orders\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()
async def main():
    for _ in range(10):     # 10 rounds of 3 concurrent connections
        for body in await asyncio.gather(get(), get(), get()):
            print(body)
asyncio.run(main())
PY
[ "$(wc -l < "$TMP/asyncio.out")" -eq 30 ] || fail "asyncio: $(wc -l < "$TMP/asyncio.out") of 30 answers"
assert_spread "$TMP/asyncio.out" 1 "python asyncio, 30 connections"
