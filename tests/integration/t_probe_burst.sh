# A burst that meets a lone endpoint's half-open probe waits for the
# probe's outcome instead of being refused. The endpoint's ejection ends;
# a program's first connect takes the probe (SPEC §3.5: one connection is
# let through); its TLS handshake is held by a tap in front of the server
# until the test lets it go. Meanwhile:
# - python3, in one process: 20 non-blocking connects (the engine waits)
#   and 10 threads' blocking ones (the caller's thread waits, seen in a
#   sleep in /proc), then the probe completes and all 30 are answered;
# - the same through a protocol = http service: 10 requests at once, each
#   picked in the engine, all answered 200;
# - a probe that fails (the tap closes it): the waiting connects fail,
#   refused with a line that says why, within the connect's timeout.
# Before, every connect that came while the probe was out was refused: a
# JVM's 64 threads lost 76 connects so. Each case fails without the wait.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tap_port=$(free_port)
mkdir -p "$TMP/www"; echo "hello" > "$TMP/www/index.html"
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
serve_www "$TMP/server.ini" "$port" "$TMP/server.log"

# The lone endpoint is the tap (127.0.0.1:tap_port), which is not up yet.
tls_ini "$TMP/client.ini" web "[service:lone]" "endpoints = 127.0.0.1:$tap_port" "tls = mtls" \
    "eject_after = 1" "eject_time = 1s" "connect_timeout = 20s" \
    "[service:lone-http]" "endpoints = 127.0.0.1:$tap_port" "tls = mtls" "protocol = http" \
    "eject_after = 1" "eject_time = 1s" "connect_timeout = 20s"
ini_access_log "$TMP/client.ini" "$TMP/access.log"
export MESHIM_CONFIG=$TMP/client.ini
circuit() { meshim stats 2>&1 | grep "^  $1 127.0.0.1:$tap_port " || true; }

# eject SERVICE: a refused connect ejects the endpoint (nothing listens);
# a protocol = http service connects for the request, answered 503.
eject() {
    shimmed python3 -c "
import socket
try:
    s = socket.create_connection(('$1', $tap_port))
    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
    s.recv(100)
except OSError:
    pass" 2>> "$TMP/eject.err"
    circuit "$1" | grep -q "ejected" || fail "$1: the endpoint was not ejected: $(circuit "$1")"
}

# hold_tap NAME: a tap that accepts at once and carries nothing until
# $TMP/NAME.go exists (tests/ktls/tap.py).
hold_tap() {
    python3 "$ROOT/tests/ktls/tap.py" "$tap_port" 127.0.0.2 "$port" "$TMP/$1" "$TMP/$1.go" &
    tap=$!
    PIDS+=($tap)
    wait_port 127.0.0.1 "$tap_port"
}
stop_tap() { kill "$tap"; wait "$tap" 2>/dev/null; }

# burst NAME SERVICE MODE ARGS...: SERVICE's endpoint ejected, a holding
# tap (NAME) put in front of the server, the ejection over; then
# probe_burst.py MODE SERVICE PORT ARGS... in the background ($client), its
# output in $TMP/NAME.out and NAME.err. Its first connect takes the probe.
burst() {
    local name=$1 svc=$2 mode=$3
    shift 3
    eject "$svc"
    hold_tap "$name"
    wait_until "circuit $svc | grep -q 'ejection over'" || fail "the ejection did not end: $(circuit "$svc")"
    env LD_PRELOAD="$MESHIM_PRELOAD" python3 "$ROOT/tests/helpers/probe_burst.py" "$mode" "$svc" "$tap_port" "$@" \
        > "$TMP/$name.out" 2> "$TMP/$name.err" &
    client=$!
    PIDS+=($client)
}

# sleepers PID: how many of PID's threads sleep for a while (nanosleep,
# a relative clock_nanosleep, or ppoll with no descriptor: the shim's wait
# between looks). The shim's own watch thread sleeps to an absolute time
# (clock_nanosleep's flags 0x1) and is not counted.
sleepers() {
    local t n=0
    for t in /proc/"$1"/task/*; do
        case "$(cut -d' ' -f1,3 "$t/syscall" 2>/dev/null)" in
            "35 "* | "230 0x0" | "271 0x0") n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}

# readers PID: how many of PID's threads wait to read one socket (urllib
# with a timeout polls it, then reads).
readers() {
    local t n=0
    for t in /proc/"$1"/task/*; do
        case "$(cut -d' ' -f1,3 "$t/syscall" 2>/dev/null)" in "7 0x1" | "45 "*) n=$((n + 1)) ;; esac
    done
    echo "$n"
}

# --- tcp: 20 non-blocking and 10 blocking connects while the probe is out ---
burst tcp lone tcp 20 10
wait_until "grep -q issued '$TMP/tcp.out'" || fail "the non-blocking connects were not issued: $(cat "$TMP/tcp.err")"
grep -q "non-blocking" "$TMP/tcp.out" && fail "non-blocking connects refused while the probe was out: $(cat "$TMP/tcp.out")"
circuit lone | grep -q "half-open, probe by pid $client" || fail "the client does not hold the probe: $(circuit lone)"
wait_until "[ \$(sleepers $client) -ge 10 ]" ||
    fail "the 10 blocking connects are not waiting (sleeping: $(sleepers $client)): $(cat "$TMP/tcp.out"; cut -d" " -f1-3 /proc/$client/task/*/syscall)"
grep -q "\"pid\":$client," "$TMP/access.log" && fail "a connect ended while the probe was out: $(grep "\"pid\":$client," "$TMP/access.log")"
touch "$TMP/tcp.go"
wait "$client" || fail "probe_burst tcp exited $?: $(tail -3 "$TMP/tcp.err")"
[ "$(head -1 "$TMP/tcp.out")" = issued ] && grep -qx "answered 30 of 30" "$TMP/tcp.out" ||
    fail "the burst was not answered whole: $(cat "$TMP/tcp.out"; grep meshim "$TMP/tcp.err" | tail -3)"
circuit lone | grep -q " closed" || fail "the probe did not close the circuit: $(circuit lone)"
[ "$(grep "\"pid\":$client," "$TMP/access.log" | grep -c '"result":"ok".*"tls":"relay"')" -eq 30 ] ||
    fail "not 30 mTLS access-log lines: $(grep "\"pid\":$client," "$TMP/access.log" | head -3)"
ok "30 connects (20 non-blocking, 10 blocking) that met the half-open probe waited for it and were answered over mTLS"
stop_tap

# --- protocol = http: 10 requests at once while the probe is out ---
burst http lone-http http 10
wait_until "circuit lone-http | grep -q 'half-open, probe by pid $client'" ||
    fail "the http client does not hold the probe: $(circuit lone-http)"
# All 10 threads wait for their answers: each request is with
# the proxy, which answered 503 at once before.
wait_until "[ \$(readers $client) -ge 10 ]" ||
    fail "the 10 requests are not waiting (reading: $(readers $client)): $(cat "$TMP/http.out")"
touch "$TMP/http.go"
wait "$client" || fail "probe_burst http exited $?: $(tail -3 "$TMP/http.err")"
grep -qx "answered 10 of 10" "$TMP/http.out" ||
    fail "the http burst was not answered whole: $(cat "$TMP/http.out"; grep meshim "$TMP/http.err" | tail -3)"
[ "$(grep "\"pid\":$client," "$TMP/access.log" | grep -c '"kind":"request".*"status":200')" -eq 10 ] ||
    fail "not 10 request lines with status 200: $(grep "\"pid\":$client," "$TMP/access.log" | head -3)"
ok "10 requests of a protocol = http service that met the half-open probe waited for it: 10 answered 200"
stop_tap

# --- the probe fails: the connects that waited for it are refused ---
burst fails lone tcp 5 5
wait_until "grep -q issued '$TMP/fails.out'" || fail "the non-blocking connects were not issued: $(cat "$TMP/fails.err")"
wait_until "[ \$(sleepers $client) -ge 5 ]" || fail "the 5 blocking connects are not waiting: $(cat "$TMP/fails.out")"
start=$(date +%s)
stop_tap                # the probe's connection closes under its handshake
wait "$client" || fail "probe_burst (probe fails) exited $?: $(tail -3 "$TMP/fails.err")"
took=$(( $(date +%s) - start ))
grep -qx "answered 0 of 10" "$TMP/fails.out" || fail "not all 10 refused: $(cat "$TMP/fails.out")"
# The probe itself (the first non-blocking connect) fails as its handshake
# did; the 9 that waited are refused.
grep -qx "non-blocking 0: ECONNRESET" "$TMP/fails.out" && [ "$(grep -c "ECONNREFUSED\|Connection refused" "$TMP/fails.out")" -eq 9 ] ||
    fail "the waiting connects did not fail refused: $(cat "$TMP/fails.out")"
[ "$took" -lt 20 ] || fail "the waiting connects took ${took} s to fail: the connect's timeout, not the probe's outcome"
circuit lone | grep -q "ejected" || fail "the failed probe did not eject the endpoint again: $(circuit lone)"
grep -q "no healthy endpoint: all 1 are ejected" "$TMP/fails.err" ||
    fail "no line says why the connects were refused: $(grep meshim "$TMP/fails.err" | tail -3)"
ok "the probe failed (reset): the 9 connects that waited for it were refused after ${took} s (connect_timeout 20 s), the endpoint ejected again"
