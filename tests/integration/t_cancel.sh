# A thread cancelled (pthread_cancel) in a meshed connect(), as a C
# program's watchdog cancels a worker stuck on a slow server
# (tests/helpers/cancelconnect: five threads, each cancelled 300 ms into its
# connect, its cleanup handler closing the socket; then one more connect).
# - mTLS to a server that accepts and never answers: the thread was
#   cancelled in the handshake's poll, and its connection stayed counted
#   open: with max_connections = 3 the last two threads and the final
#   connect were refused ("max_connections (3) reached"). The shim now
#   works with cancellation held off; each thread ends, cancelled, as its
#   connect returns (failed: the server closes), and nothing stays counted;
# - a dns service whose name server never answers: the first thread waits
#   for the first answer in pthread_cond_timedwait; cancelled there, it
#   ended holding the watcher's lock, and the next thread's connect hung
#   on it for good (its join timed out).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
T=$ROOT/$BUILD/tests

# A TCP server that accepts, says nothing and closes 0.8 s later (so each
# handshake fails then: no connection outlives its connect), and a name
# server that never answers (python3).
sp=$(free_port)
python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.2", int(sys.argv[1]))); s.listen(64)
while True:
    threading.Timer(0.8, s.accept()[0].close).start()
' "$sp" > /dev/null 2>&1 &
PIDS+=($!)
dp=$(free_port)
python3 -c '
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.2", int(sys.argv[1])))
while True:
    u.recvfrom(512)
' "$dp" > /dev/null 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$sp"
wait_udp "$dp"

tls_ini "$TMP/mtls.ini" web "[service:silent]" "endpoints = 127.0.0.2:$sp" "tls = mtls" \
    "connect_timeout = 1s" "retries = 0" "max_connections = 3"
out=$(MESHIM_CONFIG=$TMP/mtls.ini timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" "$T/cancelconnect" silent 5 \
    2> "$TMP/mtls.err") || fail "mTLS: cancelconnect failed ($?): $out $(tail -3 "$TMP/mtls.err")"
[[ "$out" == "cancelled=5 last="* ]] || fail "mTLS: '$out' (want cancelled=5); $(grep meshim "$TMP/mtls.err" | tail -3)"
! grep "max_connections" "$TMP/mtls.err" || fail "mTLS: cancelled connects stayed counted open"
ok "mTLS, 5 threads cancelled in the handshake: each ended, none stayed counted (max_connections = 3), the next connect tried ($out)"

printf '[meshim]\ndns_server = 127.0.0.2:%s\n[service:unanswered]\ndns = unanswered.test\nconnect_timeout = 2s\nretries = 0\n' \
    "$dp" > "$TMP/dns.ini"
out=$(MESHIM_CONFIG=$TMP/dns.ini timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" "$T/cancelconnect" unanswered 3 \
    2> "$TMP/dns.err") || fail "dns: cancelconnect failed or hung ($?): '$out' $(tail -3 "$TMP/dns.err")"
[[ "$out" == "cancelled="[1-3]" last="* ]] || fail "dns: '$out'"
ok "a name server that never answers: a thread cancelled waiting for its first answer ended, and the next threads and connect did not hang ($out)"
