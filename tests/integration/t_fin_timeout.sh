# A relay whose application closed its end whole (every copy), toward a
# peer that neither sends nor closes, ends at net.ipv4.tcp_fin_timeout, as
# the kernel drops an orphan socket in FIN_WAIT2 (mesh/relay.c,
# fin_timeout_ns); before, it lived as long as the process, two
# descriptors and its buffers each. A connection the application only
# shut down for writing still waits for the peer, as TCP does; once it is
# closed too, it ends at tcp_fin_timeout like the first.
#
# In a network namespace of the test's own, whose tcp_fin_timeout it sets
# to 2 s (the host's is left alone): a meshed mTLS client writes, then
# closes (or shuts down, or shuts down and then closes) its connection to
# a meshed strict server whose program accepts and then neither reads nor
# closes. The connection's access-log line is written when its relay ends.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

unshare -n true 2> /dev/null || { echo "skip: no network namespace (unshare -n)"; exit 77; }
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)       # the namespace's loopback is empty: any port is free there
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
tls_ini "$TMP/client.ini" web "[service:holder]" "endpoints = 127.0.0.2:$port" "tls = mtls"
ini_access_log "$TMP/client.ini" "$TMP/access.log"
mkdir -m 700 "$TMP/stats"

# In the namespace: the server, then CLIENT's python3 code; prints what
# the client prints. Everything started there is stopped there, by pid.
in_namespace() {
    env TMP="$TMP" PORT="$port" PRELOAD="$MESHIM_PRELOAD" CLIENT="$1" unshare -n bash -c '
        ip link set lo up && echo 2 > /proc/sys/net/ipv4/tcp_fin_timeout || exit 1
        export MESHIM_STATS_DIR=$TMP/stats
        MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD=$PRELOAD python3 -c "
import socket, time
ls = socket.socket()
ls.bind((\"127.0.0.2\", $PORT))
ls.listen()
print(\"listening\", flush=True)
held = []
while True:
    held.append(ls.accept()[0])     # never read, never closed
" > "$TMP/server.log" 2>&1 &
        server=$!
        trap "kill $server" EXIT
        for _ in $(seq 200); do grep -q listening "$TMP/server.log" && break; sleep 0.05; done
        MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD=$PRELOAD timeout 60 python3 -c "$CLIENT" 2>> "$TMP/client.err"'
}

# The first access-log line's arrival, in seconds after the client's end,
# within LIMIT seconds; or "none".
ended_after="
import os, time
def ended_after(limit, lines):
    t = time.monotonic()
    while time.monotonic() - t < limit:
        if os.path.exists('$TMP/access.log') and sum(1 for _ in open('$TMP/access.log')) >= lines:
            return '%.1f' % (time.monotonic() - t)
        time.sleep(0.05)
    return 'none'"

out=$(in_namespace "$ended_after
import socket
s = socket.create_connection(('holder', $port))
s.sendall(b'x' * 1000)
s.close()
print(ended_after(20, 1))") || fail "in the namespace: $(cat "$TMP/client.err" "$TMP/server.log")"
# ended_at_fin_timeout WHAT: $out (ended_after's) is an end, not before
# tcp_fin_timeout (2 s).
ended_at_fin_timeout() {
    [ "$out" != none ] || fail "$1: no end in 20 s: $(cat "$TMP/client.err")"
    awk -v s="$out" 'BEGIN { exit !(s >= 1.5) }' ||
        fail "$1: the relay ended after $out s, before tcp_fin_timeout (2 s)"
}
ended_at_fin_timeout "a closed connection whose peer never ends"
ok "a connection closed toward a peer that never ends: its relay ended after $out s (tcp_fin_timeout 2 s)"

: > "$TMP/access.log"
out=$(in_namespace "$ended_after
import socket
s = socket.create_connection(('holder', $port))
s.sendall(b'x' * 1000)
s.shutdown(socket.SHUT_WR)
print(ended_after(5, 1))
s.close()") || fail "in the namespace: $(cat "$TMP/client.err" "$TMP/server.log")"
[ "$out" = none ] || fail "a connection only shut down for writing ended after $out s: it must wait for the peer"
ok "a connection only shut down for writing still waits for the peer (5 s)"

: > "$TMP/access.log"
out=$(in_namespace "$ended_after
import socket, time
s = socket.create_connection(('holder', $port))
s.sendall(b'x' * 1000)
s.shutdown(socket.SHUT_WR)
# The relay has taken the end of what the program sends once its socket,
# having sent the FIN, is in FIN_WAIT2 (05); only then the close.
def fin_wait2():
    return any(l.split()[2].endswith(':%04X' % $port) and l.split()[3] == '05'
               for l in list(open('/proc/net/tcp'))[1:])
t = time.monotonic()
while not fin_wait2() and time.monotonic() - t < 20:
    time.sleep(0.05)
print('fin_wait2' if fin_wait2() else 'no FIN_WAIT2', end=' ')
s.close()
print(ended_after(20, 1))") || fail "in the namespace: $(cat "$TMP/client.err" "$TMP/server.log")"
[ "${out% *}" = fin_wait2 ] || fail "the relay did not send the FIN of a connection shut down for writing: $out"
out=${out#* }
ended_at_fin_timeout "a connection shut down for writing, then closed"
ok "a connection shut down for writing, then closed, toward a peer that never ends: its relay ended after $out s"
