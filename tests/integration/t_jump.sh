# A program that leaves a blocking connect() or name lookup by siglongjmp
# from its SIGALRM handler: GNU wget's --timeout, sendmail's connect
# timeout (POSIX allows it: connect() is async-signal-safe). The jump left
# the shim's frames half way: the thread stayed "inside the shim" for good,
# and its later lookups and connects passed through unmeshed (wget's next
# URL: "unable to resolve host address"; a connect to an `addresses`
# service would have gone out in plaintext), with cancellation held off and
# its connections counted open. glibc runs, as longjmp leaves them, the
# cleanup routines the shim's frames register (shim/libc/jumpguard.h).
# - wget -T 1, a service whose endpoint drops SYNs, then a plain service
#   and an mTLS one in the same run: served, over mTLS for the second;
# - tests/helpers/jumpconnect: five jumps out of mTLS handshakes with a
#   server that accepts and never answers (max_connections = 3: none stays
#   counted, no descriptor left), with the signal mask saved by sigsetjmp
#   and not (SIGPIPE, held during the handshake, is the program's again),
#   then the thread is whole: its cancellation enabled, the next connect
#   meshed;
# - jumps out of getaddrinfo waiting for a name server that never answers;
# - storms of jumps at any point of blocking connects, lookups and accepts.
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
T=$ROOT/$BUILD/tests

port=$(free_port)
start_backend 2 "$port"
start_black_hole 127.0.0.5 "$port"
# A TCP server that accepts, says nothing for 4 s, then closes; a name
# server that never answers; an mTLS server (python3, strict port).
sp=$(free_port)
python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.6", int(sys.argv[1]))); s.listen(64)
while True:
    threading.Timer(4, s.accept()[0].close).start()
' "$sp" > /dev/null 2>&1 &
PIDS+=($!)
dp=$(free_port)
python3 -c '
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.6", int(sys.argv[1])))
while True:
    u.recvfrom(512)
' "$dp" > /dev/null 2>&1 &
PIDS+=($!)
mp=$(free_port)
mkdir -p "$TMP/www"; echo "hello over mTLS" > "$TMP/www/index.html"
tls_ini "$TMP/server.ini" orders "[inbound:$mp]" "tls = strict"
ini_access_log "$TMP/server.ini" "$TMP/server.access"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" \
    python3 -m http.server --bind 127.0.0.7 --directory "$TMP/www" "$mp" > "$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"
wait_port 127.0.0.6 "$sp"
wait_port 127.0.0.7 "$mp"
wait_udp "$dp"

tls_ini "$TMP/client.ini" web \
    "[service:hole]" "endpoints = 127.0.0.5:$port" "connect_timeout = 5s" "retries = 0" \
    "[service:orders]" "endpoints = 127.0.0.2:$port" \
    "[service:silent]" "endpoints = 127.0.0.6:$sp" "tls = mtls" "connect_timeout = 5s" "retries = 0" \
    "max_connections = 3" \
    "[service:secure]" "endpoints = 127.0.0.7:$mp" "tls = mtls" \
    "identity = spiffe://test.mesh/ns/prod/sa/orders" \
    "[service:unanswered]" "dns = unanswered.test" "connect_timeout = 10s" "retries = 0"
ini_access_log "$TMP/client.ini" "$TMP/client.access"
sed -i "s|^log_level = info\$|&\ndns_server = 127.0.0.6:$dp|" "$TMP/client.ini"
export MESHIM_CONFIG=$TMP/client.ini

# --- wget --timeout -----------------------------------------------------------
# (wget hangs with an ASan runtime preloaded: the plain build only.)
if [[ "$MESHIM_PRELOAD" != *libasan* ]]; then
    out=$(shimmed timeout 60 wget -T 1 -t 1 -O - "http://hole/who" "http://orders/who" "http://secure/" \
          2> "$TMP/wget.err")
    [ "$out" = "$(printf 'backend-2\nhello over mTLS')" ] ||
        fail "wget after a timeout: got '$out': $(grep -v '^$' "$TMP/wget.err" | tail -6)"
    grep -q '"service":"hole",.*"result":"abandoned","flags":"DC"' "$TMP/client.access" ||
        fail "the abandoned connect has no line: $(cat "$TMP/client.access")"
    for _ in $(seq 1 100); do grep -q 'spiffe://test.mesh/ns/prod/sa/web' "$TMP/server.access" && break; sleep 0.1; done
    grep -q 'spiffe://test.mesh/ns/prod/sa/web' "$TMP/server.access" ||
        fail "the mTLS server did not log wget's identity: $(cat "$TMP/server.access" "$TMP/server.log")"
    ok "wget -T 1: its connect to a black hole left by siglongjmp (logged abandoned, DC); the next URLs by name, plain and over mTLS"
fi

# --- out of mTLS handshakes ---------------------------------------------------
for how in sig plain; do
    out=$(timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" "$T/jumpconnect" silent 5 secure \
          $([ $how = plain ] && echo plain) 2> "$TMP/jump-$how.err") ||
        fail "jumpconnect ($how) failed or hung ($?): '$out' $(tail -3 "$TMP/jump-$how.err")"
    [ "$out" = "jumped=5 leaked=0 cancel=enabled sigpipe=unblocked good=OK" ] ||
        fail "after 5 jumps out of handshakes ($how): '$out'; $(grep meshim "$TMP/jump-$how.err" | tail -3)"
    ! grep "max_connections" "$TMP/jump-$how.err" || fail "abandoned handshakes stayed counted open ($how)"
done
ok "5 jumps out of mTLS handshakes, with the signal mask saved and not: none stayed counted (max_connections = 3) or left a descriptor; cancellation and SIGPIPE as the program had them; the next connect over mTLS"

# --- out of a write waiting for a non-blocking connect ------------------------
# A socket made blocking right after its non-blocking connect: its write
# waits for the connect, which the engine makes (to the black hole: 5 s),
# and the alarm's jump leaves that wait. Cancellation, held off there, is
# the program's again (without the wait's guard: cancel=disabled), and the
# next connect is served. (The engine may not have dropped the abandoned
# connects' sockets yet: leaked is not asked.)
out=$(timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" "$T/jumpconnect" hole 2 orders write 2> "$TMP/write.err") ||
    fail "jumpconnect (write) failed or hung ($?): '$out' $(tail -3 "$TMP/write.err")"
[[ "$out" == "jumped=2 leaked="*" cancel=enabled sigpipe=unblocked good=OK" ]] ||
    fail "after 2 jumps out of writes waiting for their connects: '$out'; $(grep meshim "$TMP/write.err" | tail -3)"
ok "2 jumps out of blocking writes waiting for their non-blocking connects: cancellation and SIGPIPE as the program had them; the next connect served"

# --- out of a lookup waiting for DNS ------------------------------------------
out=$(timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" "$T/jumpconnect" unanswered 3 orders 2> "$TMP/dns.err") ||
    fail "jumpconnect (dns) failed or hung ($?): '$out' $(tail -3 "$TMP/dns.err")"
# Each of the three lookups waits (the service's first answer has one
# deadline, connect_timeout from the first wait) until its alarm cuts it,
# 1, 2 and 3 s in: no lookup gives up and goes on into a connect as its
# alarm comes (jumps out of a connect's work are the storm's, below).
[ "$out" = "jumped=3 leaked=0 cancel=enabled sigpipe=unblocked good=OK" ] ||
    fail "after jumps out of a lookup: '$out'; $(grep meshim "$TMP/dns.err" | tail -3)"
ok "jumps out of getaddrinfo waiting for a name server that never answers: the next lookup and connect meshed ($out)"

# --- a storm of jumps, at any point of a blocking connect --------------------
# Each connect cut by a timer 1 us to MAX_US in, wherever the thread is:
# before, a jump out of the shim's work (not a wait) could leave a lock
# held (the fd table's, OpenSSL's, malloc's arena) and the next connect
# hung for good (before the fix: 8 of 8 plain storms, 7 of 8 mTLS ones).
# No ejections or shared state, so that the last connect is the question.
sed -e 's/^\[meshim\]$/&\nshared_state = off/' -e 's/^\[service:\(orders\|secure\)\]$/&\neject_after = off/' \
    "$TMP/client.ini" > "$TMP/storm.ini"
# storm MODE CONFIG ARG...: jumpconnect --MODE ARG... under CONFIG (ARG 2
# names the run's files); some calls were cut, and the last one served.
storm() {
    local mode=$1 config=$2 err=$TMP/$1-$4.err
    shift 2
    out=$(MESHIM_CONFIG=$config timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" "$T/jumpconnect" --"$mode" "$@" \
          2> "$err") || fail "jumpconnect --$mode $* failed or hung ($?): '$out' $(tail -3 "$err")"
    [[ "$out" == jumped=*" good=OK" && "$out" != "jumped=0 "* ]] ||
        fail "after jumpconnect --$mode $*: '$out'; $(grep meshim "$err" | tail -3)"
}
for run in "300 orders 1000" "5000 secure 100"; do
    set -- $run
    storm storm "$TMP/storm.ini" "$@"
    ok "a storm of jumps out of $3 blocking connects to $2, each at a random point up to $1 us in: the next connect served ($out)"
done
# The same with non-blocking sockets (an event loop's connects): the shim's
# work is the same (a pick, the fd table, a dial posted to the engine, a
# TLS object), and before the program's handlers were held there, 4 of 4
# storms of 5,000 hung (glibc's malloc arena; mTLS: the TLS module's lock).
for run in "40 orders 5000" "300 secure 1000"; do
    set -- $run
    storm nb-storm "$TMP/storm.ini" "$@"
    ok "a storm of jumps out of $3 non-blocking connects to $2, each at a random point up to $1 us in: the next connect served ($out)"
done

# The same with each connect closed under its timer: a close of a meshed
# connection takes the descriptor swaps' guard, the fd table and the
# connection's record (its access-log line, its counters).
for run in "100 orders 3000" "4000 secure 300"; do
    set -- $run
    storm close-storm "$TMP/storm.ini" "$@"
    ok "a storm of jumps out of $3 connects to $2 and their closes, each at a random point up to $1 us in: the next connect served ($out)"
done
# And closed by a dup2 onto the number, which closes it under the same lock.
storm dup-storm "$TMP/storm.ini" 4000 secure 300
ok "a storm of jumps out of 300 connects to secure and the dup2 that closes each, each at a random point up to 4000 us in: the next connect served ($out)"
# And by a closefrom() of its number, which holds them as close does.
# Unheld, 3 of 3 storms of 3,000 hung.
storm closefrom-storm "$TMP/storm.ini" 100 orders 3000
ok "a storm of jumps out of 3000 connects to orders and the closefrom that closes each, each at a random point up to 100 us in: the next connect served ($out)"
# And closed where no hook sees it (the close system call itself), its
# number taken again by socket() under the same timer: that socket() lets
# go of the connection the shim still had there (the connections' list
# lock, frees, its access-log line). Unheld, the next connect hung on the
# list lock a jump had left held: 2 of 3 storms of 5,000, 3 of 3 of 20,000.
storm reuse-storm "$TMP/storm.ini" 100 orders 20000
ok "a storm of jumps out of 20000 connects to orders, each closed unseen and its number taken by socket(), each at a random point up to 100 us in: the next connect served ($out)"

# --- a storm of jumps out of lookups ------------------------------------------
# Each getaddrinfo of a service name cut by a timer 1 to 20 us in (the
# answer takes a few us): before, a jump out of the answer's work could
# leave the service's lock held (pick_has_ipv6) or malloc's, and the next
# lookup hung for good, or the heap was damaged (8 of 8 storms of 5,000; 20,000 here).
storm lookup-storm "$TMP/storm.ini" 20 orders 20000
ok "a storm of jumps out of 20000 lookups of orders, each at a random point up to 20 us in: the next lookup and connect served ($out)"

# --- a storm of jumps out of accepts ------------------------------------------
# A blocking accept() on an [inbound] port (protocol = http: each connection
# handed to a relay, whose set-up is the shim's work in the program's
# thread), each cut by a timer 1 to 300 us in while connections wait in the
# backlog: before, a jump out of the hand-off left ownfd's lock held and
# every later accept hung (4 of 4 storms of 600).
ap=$(free_port)
printf '[inbound:%s]\ntls = off\nprotocol = http\n' "$ap" > "$TMP/accept.ini"
storm accept-storm "$TMP/accept.ini" 300 "$ap" 600
ok "a storm of jumps out of 600 blocking accepts on an inbound port, each at a random point up to 300 us in: the next accept served ($out)"
