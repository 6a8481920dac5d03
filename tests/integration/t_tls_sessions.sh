# New mTLS connections stay cheap (issue 19, part 3): how sessions are kept.
# - The server resumes from its own session cache (stateful tickets): a
#   standard client (openssl s_client) gets one ticket after a full
#   handshake and none after a resumption, and resumes the same session
#   again and again. Before, every resumption decoded the whole session
#   (the client's certificate with it) from the ticket and made a new one.
# - A meshed client resumes nearly every connection while many run at once
#   and each ends as the server's program ends it (Connection: close): the
#   session it keeps is never the one a connection that ends badly spoils.
# - The client still checks the server's identity on a resumed connection:
#   it is logged from the session.
# - nginx with two workers (reuseport spreads the connections over both):
#   a session one worker made resumes on the other (tls_store.c), so the
#   client still resumes nearly every connection; without the shared
#   sessions, about half.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
start_nginx srv "server { listen 127.0.0.1:$port; location / { return 200 \"ok\\n\"; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/server.ini"
wait_port 127.0.0.1 "$port"

# --- a standard client: one ticket, then resumptions without one ----------
s_client() {   # s_client OUT [openssl options]: GET / over mTLS, whole output
    local out=$1
    shift
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:$port" \
        -cert "$C/web.pem" -key "$C/web.key" -CAfile "$C/ca.pem" -ign_eof "$@" > "$out" 2>&1
}
s_client "$TMP/full.out" -sess_out "$TMP/session.pem"
grep -q "^New, TLSv1.3" "$TMP/full.out" || fail "first s_client: no TLS 1.3 handshake: $(tail -5 "$TMP/full.out")"
grep -q "200 OK" "$TMP/full.out" || fail "first s_client: no answer: $(tail -5 "$TMP/full.out")"
n=$(grep -c "New Session Ticket arrived" "$TMP/full.out" || true)
[ "$n" -eq 1 ] || fail "a full handshake should bring one ticket, got $n"
for i in 1 2 3; do
    s_client "$TMP/resumed$i.out" -sess_in "$TMP/session.pem"
    grep -q "^Reused, TLSv1.3" "$TMP/resumed$i.out" \
        || fail "s_client $i: the session was not resumed: $(grep -E '^(New|Reused)' "$TMP/resumed$i.out")"
    grep -q "200 OK" "$TMP/resumed$i.out" || fail "s_client $i: no answer: $(tail -5 "$TMP/resumed$i.out")"
    n=$(grep -c "New Session Ticket arrived" "$TMP/resumed$i.out" || true)
    [ "$n" -eq 0 ] || fail "s_client $i: a resumed connection got $n new tickets (the session it used stays good)"
done
ok "openssl s_client: one ticket after the full handshake, the same session resumed 3 times with none"

# connect_times ACCESS_LOG: the client's connect times (TCP and handshake)
# from its access log, to tell a slow machine from a handshake that hangs.
connect_times() {
    python3 - "$1" <<'PY'
import json, sys
ms = sorted(json.loads(l).get("connect_ms") or -1 for l in open(sys.argv[1]) if l.startswith("{"))
ok = [m for m in ms if m >= 0]
if ok:
    print("connect ms: p50 %.1f p99 %.1f max %.1f; %d failed" %
          (ok[len(ok) // 2], ok[len(ok) * 99 // 100], ok[-1], len(ms) - len(ok)))
PY
}

# --- a meshed client: many short connections at once ----------------------
# many SERVICE PORT OUT: 16 threads x 20 connections (Connection: close) by
# SERVICE's name, every one answered; sets n (handshakes with the server's
# identity, one per attempt) and r (resumed) from the client's debug lines.
many() {
    local service=$1 port=$2 out=$3
    MESHIM_LOG_LEVEL=debug MESHIM_CONFIG=$TMP/client.ini MESHIM_ACCESS_LOG=$out.access shimmed python3 - "$service" "$port" \
        > "$out.out" 2> "$out.err" <<'PY' || fail "concurrent clients of $service: $(cat "$out.out"; grep -v ': debug:' "$out.err" | tail -5; connect_times "$out.access")"
import sys, threading, urllib.request
service, port = sys.argv[1], int(sys.argv[2])
errors = []
def run():
    for _ in range(20):
        try:
            r = urllib.request.urlopen("http://%s:%d/" % (service, port), timeout=20)
            assert r.read() == b"ok\n"
        except Exception as e:
            errors.append(repr(e))
threads = [threading.Thread(target=run) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print("errors", len(errors), errors[:3])
sys.exit(1 if errors else 0)
PY
    n=$(grep -c "$service: mTLS with spiffe://test.mesh/ns/prod/sa/orders" "$out.err" || true)
    r=$(grep -c "$service: mTLS with spiffe://test.mesh/ns/prod/sa/orders (TLSv1.3), session resumed" "$out.err" || true)
    # A slow attempt may be retried (a second handshake for one connection).
    [ "$n" -ge 320 ] || fail "$service: 320 connections, $n handshakes with the server's identity logged: $(grep -v debug "$out.err" | tail -3)"
    warned=$(grep -c ": warn:" "$out.err" || true)
    [ "$warned" = 0 ] || echo "$service: $n handshakes for 320 connections, $warned warnings, the first: $(grep -m1 ": warn:" "$out.err")"
}

port2=$(free_port)
# connect_timeout (the TCP connect and the handshake) is 5 s, not 1 s: this
# test is about sessions, and make test-rtt runs it in a one-vCPU guest
# with 2 ms on lo, beside another guest, where 16 handshakes at once took
# p99 300-580 ms and up to 650 ms on a quiet host, and over 1 s when the
# host was busy (14 of 320 failed as "TLS handshake: timed out").
tls_ini "$TMP/client.ini" web \
    "[service:orders]" "endpoints = 127.0.0.1:$port" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "connect_timeout = 5s" \
    "[service:workers]" "endpoints = 127.0.0.1:$port2" "tls = mtls" "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "connect_timeout = 5s"
many orders "$port" "$TMP/many"
# At most one full handshake per connection that started before the first
# ticket came (16 at once), and a few more where a ticket raced; not one in three.
[ $((n - r)) -le 32 ] || fail "only $r of $n connections resumed"
ok "16 threads x 20 short connections: $r of $n resumed, every one with the server's identity checked ($(connect_times "$TMP/many.access"))"

# --- nginx with two workers: one worker's session resumes on the other ------
tls_ini "$TMP/server2.ini" orders "[inbound:$port2]" "tls = strict"
NGINX_WORKERS=2 NGINX_USER=root start_nginx srv2 \
    "server { listen 127.0.0.1:$port2 reuseport; location / { return 200 \"ok\\n\"; } }" \
    LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/server2.ini" MESHIM_ACCESS_LOG="$TMP/server2.access"
wait_port 127.0.0.1 "$port2"
: > "$TMP/server2.access"            # wait_port's own connection is not the client's
many workers "$port2" "$TMP/workers"
pids=$(grep -o '"pid":[0-9]*' "$TMP/server2.access" | sort | uniq -c)
[ "$(echo "$pids" | wc -l)" -eq 2 ] || fail "the connections did not reach both workers: $pids"
[ $((n - r)) -le 32 ] || fail "two workers: only $r of $n connections resumed ($(echo $pids))"
ok "nginx, two workers: $r of $n resumed; per worker (connections, pid): $(echo $pids) ($(connect_times "$TMP/workers.access"))"

# --- a pre-fork server: children forked by a parent that never loads ---------
# The parent (python3, meshed, strict) only listens; each child it forks
# serves one connection and exits, loading the identity as it accepts (as
# nginx's workers load theirs as they drop root). A session one child made
# resumes with the next (the store's memory is the parent's, reserved at
# start). After the server's certificate is renewed, a child loads the new
# identity and must not resume a session made under the old one (the store
# tags each session with its identity).
port3=$(free_port)
mkdir "$TMP/srv3"
cp "$C/orders.pem" "$C/orders.key" "$C/ca.pem" "$TMP/srv3/"
printf '[meshim]\nlog_level = info\n[tls]\ncert = %s\nkey = %s\nca = %s\n[inbound:%s]\ntls = strict\n' \
    "$TMP/srv3/orders.pem" "$TMP/srv3/orders.key" "$TMP/srv3/ca.pem" "$port3" > "$TMP/server3.ini"
mkfifo "$TMP/forks"
MESHIM_CONFIG=$TMP/server3.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 -u - "$port3" "$TMP/forks" \
    > "$TMP/server3.log" 2>&1 <<'PY' &
import os, socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(16)
print("listening", flush=True)
for line in open(sys.argv[2]):         # one child per line; the parent never accepts
    pid = os.fork()
    if pid == 0:
        c, _ = ls.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        c.close()
        os._exit(0)
    os.waitpid(pid, 0)
PY
PIDS+=($!)
exec 7> "$TMP/forks"                    # the parent's stdin of children: one line each
wait_until 'grep -q listening "$TMP/server3.log"' || fail "the pre-fork server did not listen: $(cat "$TMP/server3.log")"
# child GOT: a new child serves one s_client; GOT is New or Reused.
child() {
    echo fork >&7
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:$port3" \
        -cert "$C/web.pem" -key "$C/web.key" -CAfile "$C/ca.pem" -ign_eof "$@" > "$TMP/child.out" 2>&1
    grep -q "200 OK" "$TMP/child.out" || fail "a pre-fork child did not answer: $(tail -5 "$TMP/child.out"; tail -3 "$TMP/server3.log")"
    grep -oE "^(New|Reused), TLSv1.3" "$TMP/child.out" | cut -d, -f1
}
got=$(child -sess_out "$TMP/child.sess")
[ "$got" = New ] || fail "the first child's handshake: $got"
got=$(child -sess_in "$TMP/child.sess")
[ "$got" = Reused ] || fail "a session the first child made was not resumed by the second: $got"
leaf "$C" orders2 "URI:spiffe://test.mesh/ns/prod/sa/orders,DNS:orders" ca || fail "cannot renew the server's certificate"
cp "$C/orders2.key" "$TMP/srv3/new.key" && cp "$C/orders2.pem" "$TMP/srv3/new.pem"
mv "$TMP/srv3/new.key" "$TMP/srv3/orders.key" && mv "$TMP/srv3/new.pem" "$TMP/srv3/orders.pem"
got=$(child -sess_in "$TMP/child.sess")
[ "$got" = New ] || fail "a child with the renewed identity resumed a session of the old one: $got"
exec 7>&-
ok "a pre-fork server whose parent never loads: a child's session resumes with the next; after a renewal, not (a full handshake under the new identity)"
