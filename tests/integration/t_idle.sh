#!/usr/bin/env bash
# An idle meshed process costs its host nothing: once its connections are
# made, none of the shim's threads wakes until there is something to do.
# A python3 client holds an mTLS connection (relayed by the engine) and a
# plain one, and sleeps; its INI is a file (so the watcher and the
# resolver threads run) with no DNS name to follow and a file check every
# 60 s. Over 3 s, the engine, resolver and watcher threads make no context
# switch. The resolver woke every second for nothing, in every meshed
# process of a host, until it slept until its next name was due (none
# here: until a reload).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
start_backend 2 "$port"
wait_port 127.0.0.2 "$port"
mport=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$mport]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 "$ROOT/tests/helpers/file_server.py" 127.0.0.3 "$mport" "$TMP/www2" > "$TMP/mserver.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.3 "$mport"

tls_ini "$TMP/client.ini" web "reload_interval = 60s" "[service:plain]" "endpoints = 127.0.0.2:$port" \
    "[service:secure]" "endpoints = 127.0.0.3:$mport" "tls = mtls"
MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$TMP/ready" <<'PY' > "$TMP/client.log" 2>&1 &
import socket, sys, time
held = []
for name in ("plain", "secure"):
    s = socket.create_connection((name, 80), timeout=10)
    s.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"backend-2" not in got:
        more = s.recv(4096)
        assert more, (name, got)
        got += more
    held.append(s)
open(sys.argv[1], "w").write("ready")
time.sleep(120)
PY
client=$!
PIDS+=($client)
wait_until "[ -f $TMP/ready ]" || fail "the client made no connection: $(cat "$TMP/client.log")"

# switches NAME: the context switches, voluntary and not, of the client's
# thread NAME.
switches() {
    local t
    for t in /proc/$client/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] || continue
        awk '/ctxt_switches/ { n += $2 } END { print n }' "$t/status"
        return
    done
    echo "no thread $1"
}
threads=(meshim-engine meshim-dns meshim-watch)
declare -A before
for t in "${threads[@]}"; do before[$t]=$(switches "$t"); done
sleep 3     # the window measured, not a wait for readiness
for t in "${threads[@]}"; do
    after=$(switches "$t")
    [ "$after" = "${before[$t]}" ] ||
        fail "$t of an idle client woke in 3 s: ${before[$t]} -> $after context switches"
done
ok "an idle client with an mTLS and a plain connection: its engine, resolver and watcher threads slept 3 s"
