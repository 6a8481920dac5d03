# make bench cannot rot: one short round of every row (bench/run -q:
# keep-alive for each, new connections and the 1 MiB file for one row of
# each kind), and the table, the targets and the chart come out.
# lanes: first (one of the longest: tests/integration/run starts it early)
. "$(dirname "$0")/lib.sh"
case "$MESHIM_PRELOAD" in *libasan*) echo "skip: the benchmark measures the plain build"; exit 77 ;; esac

bench/run -q -d 1 -r 1 -o "$TMP/results" > "$TMP/bench.log" 2>&1 || fail "bench/run failed: $(tail -5 "$TMP/bench.log")"
md=$TMP/results/latest.md
for row in "| direct |" "| passthrough" "| mesh plain |" "| mesh plain, stats_dir = off |" "| mesh plain, shared_state = off |" "| mesh mTLS |" "| HAProxy mTLS pair |" "| stunnel mTLS pair |" \
           "| mesh http (protocol = http, plain) |" "| mesh http, io_uring = off (each of the engine's sends its own call) |" \
           "| mesh http, tracing on (a span per request, OTLP/JSON) |" "| mesh mTLS http (protocol = http, tls = mtls) |" \
           "| HAProxy mTLS pair, mode http |"; do
    grep -qF "$row" "$md" || fail "row '$row' missing from latest.md"
done
grep -qE "failed requests|gave no result" "$md" &&
    fail "requests failed in the benchmark: $(grep -E 'failed requests|gave no result' "$md")"
grep -q "shim loaded, not meshed: ≥ 0.98" "$md" || fail "targets missing"
# Each kind of row measured its new connections and the 1 MiB file.
for row in "| direct |" "| mesh plain |" "| mesh mTLS |" "| HAProxy mTLS pair |" "| mesh http (protocol = http, plain) |"; do
    grep -F "$row" "$md" | grep -qE '^\| [^|]+ \| [0-9,]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9,]+ \| [0-9.]+ \|' ||
        fail "row '$row' lacks conn/s or GB/s: $(grep -F "$row" "$md")"
done
grep -qE "tracing on: keep-alive ≥ 0.95 × the same http row with tracing off, every span exported \(issue 21; .*\) \| [0-9.]+ \([0-9.]+% dropped\)" "$md" ||
    fail "tracing's cost (and its spans dropped) not measured: $(grep tracing "$md")"
grep -q "stats on vs stats_dir = off: keep-alive" "$md" || fail "stats cost line missing"
grep -q "the engine's sends of a turn in one io_uring call vs one call each (no target; what it buys) | [0-9]" "$md" ||
    fail "io_uring's gain not measured: $(grep io_uring "$md")"
grep -q "Start-up of \`/bin/true\`" "$md" || fail "start-up line missing"
grep -qE "First answer of a new process .*: [0-9.]+ ms direct; [0-9.]+ ms meshed over mTLS \(\+-?[0-9.]+ ms.*; [0-9.]+ ms with protocol = http over mTLS" "$md" \
    || fail "the first answer of a new process was not measured: $(grep -i 'first answer' "$md")"
grep -q "idle mTLS connection | client [0-9.-]* KiB, server [0-9.-]* KiB" "$md" \
    || fail "memory per idle mTLS connection not measured: $(grep 'idle mTLS' "$md")"
[ "$(head -c 8 "$TMP/results/latest.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "latest.png is not a PNG"
ok "bench/run -q -d 1 -r 1: every row measured, table and chart written"

# Each wrk of the table first warms up (bench/wrk.lua): one request on each
# of BENCH_WARMUP connections at once, by the name wrk was given, through
# the shim, before wrk's own connections open. A server that notes each
# connection's requests in order sees the warm-up's first, one each (after
# wrk's check that each address it resolved connects: no request).
port=$(free_port)
cat > "$TMP/conns.py" <<'PY'
import http.server, json, sys, threading
conns, lock = [], threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        with lock:
            self.mine = len(conns); conns.append(0)
    def do_GET(self):
        body = b"ok\n"
        if self.path == "/conns":
            body = json.dumps(conns[:self.mine]).encode()
        else:
            with lock:
                conns[self.mine] += 1
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$TMP/conns.py" "$port" & PIDS+=($!)
wait_port 127.0.0.1 "$port"
line=$(BENCH_WARMUP=3 MESHIM_SERVICES="warm=127.0.0.1:$port" shimmed wrk -t1 -c2 -d1 -s bench/wrk.lua \
       "http://warm:$port/" 2>&1) || fail "wrk with bench/wrk.lua failed: $line"
grep -q "warm-up:" <<< "$line" && fail "the warm-up failed: $line"
conns=$(curl -sf "http://127.0.0.1:$port/conns") || fail "no connection list from the server"
python3 - "$conns" <<'PY' || fail "not 3 warm-up connections of one request each before wrk's 2: $conns"
import json, sys
c = [n for n in json.loads(sys.argv[1]) if n]
sys.exit(0 if len(c) == 5 and c[:3] == [1, 1, 1] and min(c[3:]) > 1 else 1)
PY
ok "bench/wrk.lua: 3 warm-up connections, one request each, before wrk's own 2 ($conns)"

# The fixed-rate table (bench/run -f): one short load, every row (the
# default ones and the http rows of make bench's fixedrate-http table), the
# table, the targets, Istio's published figures and the chart.
bench/run -f -d 1 -w 1 -r 1 -C 1000x16 -R direct,mesh,mesh-mtls,haproxy,mesh-http,mesh-mtls-http,haproxy-http \
    -o "$TMP/results" > "$TMP/fixed.log" 2>&1 || fail "bench/run -f failed: $(tail -5 "$TMP/fixed.log")"
md=$TMP/results/fixedrate.md
for row in "| direct |" "| mesh plain |" "| mesh mTLS (relay) |" "| HAProxy mTLS pair |" \
           "| mesh http (protocol = http, plain) |" "| mesh mTLS http (protocol = http, tls = mtls) |" \
           "| HAProxy mTLS pair, mode http |"; do
    grep -qF "$row" "$md" || fail "row '$row' missing from fixedrate.md"
done
# The p99 targets at one offered load: each row's over its pair's, same round.
for t in "mTLS p99 ≤ ⅓ of the HAProxy pair's (SPEC §4), both at 1,000 requests/s over 16 connections" \
         "p99 ≤ ½ of the HAProxy pair's in mode http (issue 20), both at 1,000 requests/s over 16 connections"; do
    grep -F "$t" "$md" | grep -qE '\| [0-9.]+ \| (met|\*\*not met\*\*) \|$' || fail "no equal-load target line: $t"
done
grep -qE "failed requests|gave no result" "$md" &&
    fail "requests failed at a fixed rate: $(grep -E 'failed requests|gave no result' "$md")"
grep -qE '^\| mesh mTLS \(relay\) \| 1,000 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [-+][0-9.]+ ' "$md" \
    || fail "the mTLS row lacks the rate, its percentiles or what it adds: $(grep 'mesh mTLS' "$md")"
grep -qE "vCPU per 1000 requests/s per end \| client -?[0-9.]+, server -?[0-9.]+" "$md" || fail "no CPU per 1000 requests/s: $(grep vCPU "$md")"
grep -qE "2 MB per 1000 requests/s per end \(added at 1000 requests/s\) \| client [-0-9.]+ MB, server [-0-9.]+ MB" "$md" || fail "no memory per end"
grep -q "a ztunnel about 0.06 vCPU and 12 MB" "$md" || fail "Istio's published figures missing"
[ "$(head -c 8 "$TMP/results/fixedrate.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] \
    || fail "fixedrate.png is not a PNG"
ok "bench/run -f: every row at 1000 requests/s, what each adds over direct, CPU and memory per end, p99 against the pairs"

# ratebench keeps its schedule when the server stalls and counts the wait
# of every request that was due during the stall (coordinated omission):
# 100 requests/s on one connection to a server that sleeps 1 s once. A
# client timing from the send would see one slow request in 300 (p90 a few
# ms); from the schedule, about 100 requests waited up to 1 s.
port=$(free_port)
cat > "$TMP/stall.py" <<'PY'
import http.server, socket, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    n = 0
    def setup(self):   # head and body leave in two writes: no Nagle wait between them
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self):
        H.n += 1
        if H.n == 100:
            time.sleep(1)
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$TMP/stall.py" "$port" & PIDS+=($!)
wait_port 127.0.0.1 "$port"
line=$("$BUILD/bench/ratebench" 127.0.0.1 "$port" / 100 1 3 0) || fail "ratebench failed: $line"
kv() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<< "$line"; }
[ "$(kv due)" = 300 ] && [ "$(kv requests)" = 300 ] || fail "the schedule was not kept (300 due and answered): $line"
python3 -c "import sys; sys.exit(0 if float('$(kv p90)') >= 300 else 1)" \
    || fail "the stall's waiting requests were not counted (p90 under 300 ms): $line"
ok "ratebench: a 1 s stall shows in p90 ($(kv p90) ms), 300 of 300 requests due and answered"
