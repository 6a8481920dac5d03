#!/usr/bin/env bash
# protocol = http: fault_abort and fault_delay are drawn per request, as
# Envoy's HTTP fault filter (Istio's VirtualService faults) draws them,
# not per connection: on one keep-alive connection (python3's
# http.client, python3 http.server backends)
#   - fault_abort = 50 %: of 60 GETs some are answered 503 here (FI,LR in
#     the access log, x-meshim-error says why, no endpoint sees them) and
#     the rest by the endpoints, the connection kept throughout;
#   - fault_delay = 400ms for every request: each of 3 requests waits
#     (DI); per connection only the first did;
#   - a split whose one target has fault_abort = 100 %: only its share of
#     the requests fails;
#   - max_requests = 2 (Envoy's circuit breaker of the same name, Istio's
#     http2MaxRequests): a third request in flight is answered 503 here
#     (UO,LR), no endpoint sees it, and the place is free again after.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
for i in 2 3; do
    python3 tests/helpers/http_backend.py "127.0.0.$i" "$port" "b$i" "$TMP/b$i.log" &
    PIDS+=($!)
done
for i in 2 3; do wait_port "127.0.0.$i" "$port"; done

cat > "$TMP/mesh.ini" <<INI
[meshim]
access_log = $TMP/access.log
[service:abort]
protocol = http
endpoints = 127.0.0.2:$port
fault_abort = 50%
[service:slow]
protocol = http
endpoints = 127.0.0.2:$port
fault_delay = 400ms
fault_delay_percent = 100%
[service:canary]
protocol = http
split = stable 50, broken 50
[service:stable]
protocol = http
endpoints = 127.0.0.2:$port
[service:broken]
protocol = http
endpoints = 127.0.0.3:$port
fault_abort = 100%
[service:capped]
protocol = http
endpoints = 127.0.0.3:$port
max_requests = 2
INI
export MESHIM_CONFIG=$TMP/mesh.ini

# client.py HOST N: N GETs of /who on one connection; per answer its
# status, x-meshim-error and seconds taken; then how many connections it
# opened.
cat > "$TMP/client.py" <<'PY'
import http.client, sys, time
host, n = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection(host, int(sys.argv[3]), timeout=10)
opened = 0
for i in range(n):
    if c.sock is None:
        opened += 1
    t = time.monotonic()
    c.request("GET", "/who")
    r = c.getresponse()
    r.read()
    print(r.status, r.getheader("x-meshim-error", "-").replace(" ", "_"), "%.3f" % (time.monotonic() - t))
print("connections", opened)
PY

# --- fault_abort ------------------------------------------------------------
shimmed python3 "$TMP/client.py" abort 60 "$port" > "$TMP/abort.out" 2> "$TMP/abort.err" ||
    fail "abort client: $(tail -3 "$TMP/abort.err")"
aborted=$(grep -c "^503 fault_injected_(fault_abort) " "$TMP/abort.out" || true)
served=$(grep -c "^200 " "$TMP/abort.out" || true)
[ $((aborted + served)) = 60 ] || fail "fault_abort: answers other than 200 and the fault's 503: $(sort "$TMP/abort.out" | uniq -c | head)"
# 60 draws at 50 %: fewer than 10 of either is a 1 in 10^7 chance.
[ "$aborted" -ge 10 ] && [ "$served" -ge 10 ] || fail "fault_abort = 50%: $aborted aborted, $served served of 60"
grep -qx "connections 1" "$TMP/abort.out" || fail "fault_abort: the connection was not kept: $(tail -1 "$TMP/abort.out")"
seen=$(grep -c "GET /who" "$TMP/b2.log" || true)
[ "$seen" = "$served" ] || fail "fault_abort: the endpoint saw $seen requests, the client got $served answers from it"
n=$(grep -c '"service":"abort".*"status":503.*"flags":"FI,LR"' "$TMP/access.log" || true)
[ "$n" = "$aborted" ] || fail "fault_abort: $n access-log lines with FI,LR, $aborted aborted: $(grep '"status":503' "$TMP/access.log" | head -2)"
ok "fault_abort = 50%: $aborted of 60 requests answered 503 here (FI,LR), $served by the endpoint, one connection"

# --- fault_delay -------------------------------------------------------------
shimmed python3 "$TMP/client.py" slow 3 "$port" > "$TMP/slow.out" 2> "$TMP/slow.err" ||
    fail "slow client: $(tail -3 "$TMP/slow.err")"
quick=$(awk '$1 == 200 && $3 < 0.4' "$TMP/slow.out" | wc -l)
[ "$(grep -c '^200 ' "$TMP/slow.out")" = 3 ] && [ "$quick" = 0 ] ||
    fail "fault_delay = 400ms on every request: $(cat "$TMP/slow.out")"
n=$(grep -c '"service":"slow".*"status":200.*"flags":"DI"' "$TMP/access.log" || true)
[ "$n" = 3 ] || fail "fault_delay: $n access-log lines with DI (want 3)"
ok "fault_delay = 400ms: each of 3 requests on one connection waited (DI): $(awk '$1 == 200 {printf "%s s ", $3}' "$TMP/slow.out")"

# --- a split's faulty target -----------------------------------------------------
shimmed python3 "$TMP/client.py" canary 40 "$port" > "$TMP/canary.out" 2> "$TMP/canary.err" ||
    fail "canary client: $(tail -3 "$TMP/canary.err")"
aborted=$(grep -c "^503 fault_injected_(fault_abort) " "$TMP/canary.out" || true)
served=$(grep -c "^200 " "$TMP/canary.out" || true)
[ $((aborted + served)) = 40 ] && [ "$aborted" -ge 5 ] && [ "$served" -ge 5 ] ||
    fail "split 50/50 to a target with fault_abort = 100%: $aborted aborted, $served served of 40"
n3=$(grep -c "GET /who" "$TMP/b3.log" 2> /dev/null || true)     # no file: never asked
[ "${n3:-0}" = 0 ] || fail "the broken target's endpoint was reached $n3 times"
n=$(grep -c '"service":"broken".*"status":503.*"flags":"FI,LR"' "$TMP/access.log" || true)
[ "$n" = "$aborted" ] || fail "split: $n FI lines name the broken target, $aborted aborted"
ok "split 50/50, one target fault_abort = 100%: $aborted of 40 aborted, all in that target's name; $served served"

# --- max_requests ------------------------------------------------------------
# Two requests held at the endpoint (their arrival in its log is the
# readiness), then two more: 503 here at once; the held ones released and
# answered, then one more goes through.
: > "$TMP/b3.log"
shimmed python3 - "$port" "$TMP/b3.log" > "$TMP/capped.out" 2> "$TMP/capped.err" <<'PY' ||
import http.client, sys, threading, time
port, log = int(sys.argv[1]), sys.argv[2]
def get(path, out):
    c = http.client.HTTPConnection("capped", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    out.append("%d %s" % (r.status, r.getheader("x-meshim-error", "-").replace(" ", "_")))
held = []
threads = [threading.Thread(target=get, args=("/hold", held)) for _ in range(2)]
for t in threads: t.start()
for _ in range(3000):
    if sum(l.startswith("GET /hold") for l in open(log)) == 2: break
    time.sleep(0.01)
else:
    sys.exit("the two held requests never reached the endpoint")
over = []
for _ in range(2): get("/who", over)
open(log + ".release", "w").close()
for t in threads: t.join()
after = []
get("/who", after)
print("held", *held); print("over", *over); print("after", *after)
PY
    fail "max_requests client: $(tail -3 "$TMP/capped.err")"
grep -qx "held 200 - 200 -" "$TMP/capped.out" && grep -qx "over 503 max_requests_(2)_reached 503 max_requests_(2)_reached" "$TMP/capped.out" &&
    grep -qx "after 200 -" "$TMP/capped.out" || fail "max_requests = 2: $(cat "$TMP/capped.out")"
[ "$(grep -c "GET /who" "$TMP/b3.log")" = 1 ] || fail "max_requests: the endpoint saw a request over the limit"
n=$(grep -c '"service":"capped".*"status":503.*"flags":"UO,LR"' "$TMP/access.log" || true)
[ "$n" = 2 ] || fail "max_requests: $n access-log lines with UO,LR (want 2)"
ok "max_requests = 2: with two requests held at the endpoint, two more answered 503 here (UO,LR) and never sent; the places free again after"
