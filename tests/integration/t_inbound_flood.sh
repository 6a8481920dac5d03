#!/usr/bin/env bash
# Clients that open a connection to a strict mTLS port and say nothing
# (security review, finding 11). Each pending handshake holds three of the
# server's descriptors; 200 of them:
#   - beyond 128 pending on the port, each newcomer has the oldest silent
#     one evicted (one warning each, counted as overflow), so the server's
#     descriptors stay bounded and a real client (who speaks at once) gets in;
#   - a good client (curl --cert) is served meanwhile;
#   - a client that sends no byte is cut after 3 s, and the server's
#     descriptors go back to where they were.
# First, a burst of 400 real (meshed) clients at once under a soft limit
# with room above it: none is cut.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
mkdir -p "$TMP/www"
echo "TOPSECRET-ANSWER" > "$TMP/www/secret-file"
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
# A burst of real clients is not a flood: wrk opens 400 meshed mTLS
# connections at once to nginx on a strict port, both under a soft limit of
# 1024 with room above it (hard 16384, as systemd gives services 1024 and
# 524288). Two of each handshake's three descriptors are the shim's and live
# in that room, so the caps follow the hard limit (1024 under way before the
# silent are evicted) and no connection is cut. Before, they followed the
# soft 1024 (128 and 256): wrk -c 900 lost 679 connections to "evicted: too
# many TLS handshakes under way on this port", -c 400 here lost some.
bport=$(free_port)
tls_ini "$TMP/burst-server.ini" orders "[inbound:$bport]" "tls = strict"
tls_ini "$TMP/burst-client.ini" web "[service:burst]" "endpoints = 127.0.0.2:$bport" "tls = mtls"
ulimit -Sn 1024 && ulimit -Hn 16384 ||
    fail "cannot set the descriptor limits to 1024 and 16384 (hard limit $(ulimit -Hn))"
NGINX_USER=root start_nginx burst "server { listen 127.0.0.2:$bport backlog=1024; location / { return 200 ok; } }" \
    MESHIM_CONFIG="$TMP/burst-server.ini" LD_PRELOAD="$MESHIM_PRELOAD"
burst_nginx=${PIDS[-1]}
wait_port 127.0.0.2 "$bport"
MESHIM_CONFIG=$TMP/burst-client.ini shimmed wrk -t2 -c400 -d2s --timeout 10s "http://burst:$bport/" \
    > "$TMP/burst-wrk.out" 2> "$TMP/burst-wrk.err" || fail "wrk: $(cat "$TMP/burst-wrk.out" "$TMP/burst-wrk.err")"
cut=$(cat "$TMP/burst/stderr" "$TMP/burst/error.log" | grep -c 'too many TLS handshakes under way' || true)
[ "$cut" -eq 0 ] && ! grep -q 'Socket errors' "$TMP/burst-wrk.out" ||
    fail "a burst of 400 mTLS clients: $cut cut by the server's caps; wrk: $(grep -E 'requests in|Socket errors' "$TMP/burst-wrk.out" | tr '\n' ' ')"
ok "a burst of 400 mTLS connections at once (wrk -c 400, soft limit 1024, hard 16384): none cut, $(awk '/requests in/ {print $1}' "$TMP/burst-wrk.out") requests"
kill "$burst_nginx" 2> /dev/null
wait "$burst_nginx" 2> /dev/null

# The common descriptor limit, with no room above it: the shim's caps
# follow it (128 handshakes under way before the silent are evicted, 256
# before new ones are refused).
ulimit -n 1024
# The application: accepts with a deep backlog, a thread per client, answers
# one HTTP request with the file.
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 -u - "$port" "$TMP/www" \
    > "$TMP/server.log" 2>&1 <<'PY' &
import socket, sys, threading
port, www = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.2", port))
ls.listen(1024)
def serve(c):
    with c:
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        print('"GET', flush=True)
        body = open(www + "/secret-file", "rb").read()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
server=$!
PIDS+=($server)
wait_port 127.0.0.2 "$port"
fds() { ls "/proc/$server/fd" | wc -l; }
base=$(fds)

# 200 silent clients, held until $TMP/release exists (at most 60 s).
python3 - "$port" "$TMP" <<'PY' &
import os, socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
held = []
for _ in range(200):
    held.append(socket.create_connection(("127.0.0.2", port)))
open(tmp + "/flooding", "w").close()
deadline = time.time() + 60
while not os.path.exists(tmp + "/release") and time.time() < deadline:
    time.sleep(0.05)
PY
flood=$!
PIDS+=($flood)
for i in $(seq 1 200); do [ -e "$TMP/flooding" ] && break; sleep 0.1; done
[ -e "$TMP/flooding" ] || fail "the flood did not connect"
evicted() { grep -c 'too many TLS handshakes under way on this port' "$TMP/server.log"; }
for i in $(seq 1 100); do [ "$(evicted)" -ge 72 ] && break; sleep 0.1; done
refused=$(evicted)
[ "$refused" -ge 72 ] || fail "$refused of 200 silent clients evicted (at least 72 beyond 128): $(tail -3 "$TMP/server.log")"
during=$(fds)
[ "$during" -le $((base + 3 * 128 + 8)) ] ||
    fail "the server holds $during descriptors during the flood (was $base; bound $((base + 3 * 128 + 8)))"
ok "200 silent clients: $refused evicted beyond 128 pending, the server holds $during descriptors (was $base)"

out=$(curl -sS --max-time 10 --cacert "$C/ca.pem" --cert "$C/web.pem" --key "$C/web.key" \
      --resolve "orders:$port:127.0.0.2" "https://orders:$port/secret-file" 2>&1)
[ "$out" = "TOPSECRET-ANSWER" ] || fail "a good client during the flood got: $out"
ok "a good client is served during the flood"

for i in $(seq 1 200); do
    [ "$(grep -c 'no byte from the client in 3 s' "$TMP/server.log")" -ge 100 ] && break
    sleep 0.1
done
cut=$(grep -c 'no byte from the client in 3 s' "$TMP/server.log")
[ "$cut" -ge 100 ] || fail "only $cut silent clients cut after 3 s: $(tail -3 "$TMP/server.log")"
for i in $(seq 1 100); do [ "$(fds)" -le $((base + 2)) ] && break; sleep 0.1; done
[ "$(fds)" -le $((base + 2)) ] || fail "the server still holds $(fds) descriptors (was $base)"
touch "$TMP/release"
wait "$flood"
ok "silent clients cut after 3 s ($cut), the server's descriptors back to $(fds)"
