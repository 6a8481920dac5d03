# [tracing]: W3C trace context and spans over OTLP/HTTP (JSON) for
# protocol = http services and ports, to our own receiver
# (otlp_receiver.py: OTLP's field names and types checked, else 400):
# - curl → the mesh (client span) → a meshed python3 server on an
#   [inbound:PORT] http port (server span): one trace; the server got the
#   client span's traceparent; a request that carries a traceparent
#   continues its trace; the access logs' request lines carry the ids;
# - sampling: 0% starts no trace but follows a sampled parent; a parent
#   that did not sample is followed too (flags 00 go on upstream);
# - a collector that answers 503 first: the batch is sent again;
# - a collector that is down, and one that never answers: every request
#   still answered, the spans counted as dropped, the program exits.
. "$(dirname "$0")/lib.sh"
unset MESHIM_STATS_DIR     # its INI files name the stats folders it checks
shims curl python3

port=$(free_port)
otlp=$(free_port)
python3 tests/integration/otlp_receiver.py "$otlp" "$TMP/spans" > "$TMP/receiver.out" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1 "$otlp"

cat > "$TMP/server.ini" <<INI
[meshim]
access_log = $TMP/server.access
stats_dir = $TMP/stats
[tracing]
otlp_endpoint = http://127.0.0.1:$otlp/v1/traces
service_name = orders-server
[inbound:$port]
tls = off
protocol = http
INI
MESHIM_CONFIG=$TMP/server.ini shimmed python3 tests/helpers/http_backend.py 127.0.0.2 "$port" b2 \
    "$TMP/b2.log" > "$TMP/b2.out" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$port"

client_ini() {   # client_ini FILE OTLP_URL [tracing lines...]
    local f=$1 url=$2
    shift 2
    {
        echo "[meshim]"
        echo "access_log = $TMP/client.access"
        echo "stats_dir = $TMP/stats"
        echo "[tracing]"
        echo "otlp_endpoint = $url"
        printf '%s\n' "$@"
        echo "[service:orders]"
        echo "endpoints = 127.0.0.2:$port"
        echo "protocol = http"
    } > "$f"
}
client_ini "$TMP/client.ini" "http://127.0.0.1:$otlp/v1/traces"

# --- 1. one trace through two meshed programs --------------------------------
got=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 "http://orders:$port/header/traceparent") ||
    fail "curl: $got"
[[ $got =~ ^00-([0-9a-f]{32})-([0-9a-f]{16})-01$ ]] || fail "the server got no traceparent from the mesh: '$got'"
trace=${BASH_REMATCH[1]} client_span=${BASH_REMATCH[2]}
spans_where "s['traceId'] == '$trace'" 2 || fail "the trace's two spans never arrived: $(cat "$TMP/spans" "$TMP/spans.log" 2>&1)"
python3 - "$TMP/spans" "$trace" "$client_span" "$port" <<'PY' || fail "the trace"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1])]
trace, client_id, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
mine = [s for s in spans if s["traceId"] == trace]
assert len(mine) == 2, mine
c = next(s for s in mine if s["kind"] == 3)
srv = next(s for s in mine if s["kind"] == 2)
assert c["spanId"] == client_id and "parentSpanId" not in c, c
assert srv["parentSpanId"] == client_id, srv
assert c["service"] == "curl" and srv["service"] == "orders-server", (c["service"], srv["service"])
a = c["attrs"]
assert a["http.request.method"] == "GET" and a["http.response.status_code"] == 200, a
assert a["url.full"] == "http://orders:%d/header/traceparent" % port, a
assert a["server.address"] == "orders" and a["server.port"] == port, a
assert a["network.peer.address"] == "127.0.0.2" and a["meshim.attempts"] == 1, a
assert a["meshim.service"] == "orders", a
b = srv["attrs"]
assert b["url.path"] == "/header/traceparent" and b["http.response.status_code"] == 200, b
assert b["server.port"] == port and b["client.address"] == "127.0.0.1", b
assert b["meshim.service"] == "inbound:%d" % port, b
assert c["name"] == "GET" and c["status"] == {"code": 0}, c
# The server span lies inside the client span.
assert int(c["startTimeUnixNano"]) <= int(srv["startTimeUnixNano"]) <= int(srv["endTimeUnixNano"]) \
    <= int(c["endTimeUnixNano"]) + 10**6, (c, srv)
PY
ok "curl → mesh → meshed python3: one trace, the server span the child of the client span (traceparent 00-$trace-$client_span-01)"

# The application's own context: the mesh's span is its child.
parent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
got=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 -H "traceparent: $parent" \
      -H "tracestate: vendor=kept" "http://orders:$port/header/traceparent") || fail "curl: $got"
[[ $got =~ ^00-4bf92f3577b34da6a3ce929d0e0e4736-([0-9a-f]{16})-01$ ]] && [ "${BASH_REMATCH[1]}" != 00f067aa0ba902b7 ] ||
    fail "the server should see the trace continued with the mesh's span as parent: '$got'"
child=${BASH_REMATCH[1]}
got=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 -H "traceparent: $parent" \
      -H "tracestate: vendor=kept" "http://orders:$port/header/tracestate") || fail "curl: $got"
[ "$got" = "vendor=kept" ] || fail "tracestate must pass unchanged: '$got'"
spans_where "s['spanId'] == '$child' and s.get('parentSpanId') == '00f067aa0ba902b7' and s['kind'] == 3" ||
    fail "no client span under the application's context"
spans_where "s.get('parentSpanId') == '$child' and s['kind'] == 2" || fail "no server span under the mesh's client span"
# The server exports its spans in batches, after the answer: its span of
# the tracestate request may come late, and part 2 counts every span that
# comes after it starts. This trace has two requests, two spans each.
spans_where "s['traceId'] == '4bf92f3577b34da6a3ce929d0e0e4736'" 4 ||
    fail "the tracestate request's spans: $(grep -c 4bf92f3577b34da6a3ce929d0e0e4736 "$TMP/spans") of this trace's 4"
ok "a request with a traceparent: its trace continued (the client span's parent: the application's span); one traceparent upstream; tracestate unchanged"

# The access logs' request lines carry the ids.
wait_until "grep -q '\"trace_id\":\"$trace\"' '$TMP/server.access'" || fail "server access log: $(cat "$TMP/server.access")"
grep -q "\"kind\":\"request\".*\"trace_id\":\"$trace\",\"span_id\":\"$client_span\"" "$TMP/client.access" ||
    fail "client access log: $(cat "$TMP/client.access")"
ok "access logs: request lines with trace_id and span_id, both ends"

# --- 2. sampling ----------------------------------------------------------
client_ini "$TMP/none.ini" "http://127.0.0.1:$otlp/v1/traces" "sample_rate = 0%"
: > "$TMP/spans"
for i in 1 2 3 4 5; do
    got=$(MESHIM_CONFIG=$TMP/none.ini shimmed curl -sS --max-time 10 "http://orders:$port/header/traceparent") ||
        fail "curl: $got"
    [[ $got =~ ^00-[0-9a-f]{32}-[0-9a-f]{16}-00$ ]] || fail "sample_rate = 0%: the server should see flags 00: '$got'"
done
sampled=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
MESHIM_CONFIG=$TMP/none.ini shimmed curl -sS --max-time 10 -H "traceparent: $sampled" \
    "http://orders:$port/who" > /dev/null || fail "curl with a sampled parent"
spans_where "s['traceId'] == '0af7651916cd43dd8448eb211c80319c' and s['kind'] == 3" ||
    fail "a sampled parent must be followed at sample_rate = 0%"
got=$(MESHIM_CONFIG=$TMP/client.ini shimmed curl -sS --max-time 10 \
      -H "traceparent: 00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203331-00" "http://orders:$port/header/traceparent")
[[ $got =~ ^00-0af7651916cd43dd8448eb211c80319d-[0-9a-f]{16}-00$ ]] || fail "a parent that did not sample: '$got'"
# Everything that could arrive has (the sampled parent's spans did, and
# each curl flushed at exit): only that trace's two spans are here.
spans_where "s['traceId'] == '0af7651916cd43dd8448eb211c80319c'" 2 || fail "the sampled trace's server span"
[ "$(wc -l < "$TMP/spans")" -eq 2 ] || fail "unsampled spans were exported: $(cat "$TMP/spans")"
meshim stats --prometheus --dir "$TMP/stats" > "$TMP/prom.txt"
grep -q "^meshim_trace_spans_total{process=\"python3\",.*result=\"not_sampled\"} [1-9]" "$TMP/prom.txt" ||
    fail "the server's unsampled spans are not counted: $(grep trace_spans "$TMP/prom.txt")"
ok "sample_rate = 0%: no new trace sampled (flags 00 upstream), a sampled parent followed, an unsampled one too"

# --- 3. a collector that answers 503 first --------------------------------
otlp2=$(free_port)
python3 tests/integration/otlp_receiver.py "$otlp2" "$TMP/spans2" --fail 1 > "$TMP/receiver2.out" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1 "$otlp2"
client_ini "$TMP/retry.ini" "http://127.0.0.1:$otlp2/v1/traces"
MESHIM_CONFIG=$TMP/retry.ini shimmed python3 - "$port" <<'PY' || fail "python3 client"
import sys, time, urllib.request
for _ in range(3):
    urllib.request.urlopen("http://orders:%s/who" % sys.argv[1], timeout=10).read()
time.sleep(1)      # the exporter's batch, its 503, its back-off and the try that works
PY
wait_until "[ \$(wc -l < '$TMP/spans2' 2>/dev/null || echo 0) -ge 3 ]" || fail "spans lost after a 503: $(cat "$TMP/spans2.log")"
[ "$(head -1 "$TMP/spans2.log")" = "503 try again" ] || fail "the collector's log: $(cat "$TMP/spans2.log")"
ok "a collector's 503: the batch sent again, $(wc -l < "$TMP/spans2") spans arrived"

# --- 4. a collector that is down, one that never answers -------------------
down=$(free_port)
hp=$(free_port)
start_black_hole 127.0.0.5 "$hp"
for url in "http://127.0.0.1:$down/v1/traces" "http://127.0.0.5:$hp/v1/traces"; do
    rm -rf "$TMP/stats-down"
    mkdir -p "$TMP/stats-down"
    client_ini "$TMP/down.ini" "$url"
    sed -i "s|^stats_dir = .*|stats_dir = $TMP/stats-down|" "$TMP/down.ini"
    # 3000 requests on one keep-alive connection: the queue (2048) fills
    # while the exporter waits on the collector; every request answered,
    # and the spans that did not fit counted (read while the program runs:
    # its stats file goes when it exits).
    MESHIM_CONFIG=$TMP/down.ini shimmed python3 - "$port" "$MESHIM_CMD" "$TMP/stats-down" \
        > "$TMP/down.out" 2>&1 <<'PY' || fail "requests failed with the collector at $url: $(cat "$TMP/down.out")"
import http.client, os, subprocess, sys
c = http.client.HTTPConnection("orders", int(sys.argv[1]), timeout=10)
for i in range(3000):
    c.request("GET", "/who")
    r = c.getresponse()
    assert r.status == 200 and r.read().startswith(b"b2 GET /who"), r.status
print("3000 answered", flush=True)
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
out = subprocess.run([sys.argv[2], "stats", "--prometheus", "--dir", sys.argv[3]], env=env,
                     capture_output=True, text=True).stdout
print("\n".join(l for l in out.splitlines() if l.startswith("meshim_trace_spans_total")))
PY
    grep -qx "3000 answered" "$TMP/down.out" || fail "$(cat "$TMP/down.out")"
    dropped=$(sed -n 's/^meshim_trace_spans_total{.*result="dropped"} \([0-9]*\)$/\1/p' "$TMP/down.out")
    [ "${dropped:-0}" -ge 500 ] || fail "collector at $url: spans dropped not counted: $(cat "$TMP/down.out")"
    grep -q 'result="exported"} 0$' "$TMP/down.out" || fail "exported to a collector that is down? $(cat "$TMP/down.out")"
    # ... and, the black hole's queue overflowing (each batch waits out its
    # tries), the program says so once, at exit, where its user looks.
    [ "$url" = "http://127.0.0.5:$hp/v1/traces" ] || continue
    grep -Eq 'meshim\[[0-9]+\]: warn: tracing: [0-9]+ of 3000 sampled spans were dropped: the queue was full' \
        "$TMP/down.out" || fail "no line at exit about the spans dropped: $(cat "$TMP/down.out")"
done
ok "collector down (refused, then black-holed): 3000 requests answered each time, the spans that did not fit dropped, counted and said at exit"

# --- 5. the exporter yields to the program ---------------------------------
# Ten nice levels below the program (19 at most), and never real-time: a
# program run by chrt -f keeps its own threads, the exporter time-shares.
# (Idle priority, as before, starved it wherever the program kept its
# cores busy: most spans were dropped.)
exporter_sched() {   # exporter_sched RUNNER...: "NICE POLICY" of the program's exporter thread
    MESHIM_CONFIG=$TMP/client.ini "$@" env LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" <<'PY'
import glob, http.client, sys, time
c = http.client.HTTPConnection("orders", int(sys.argv[1]), timeout=10)
c.request("GET", "/who")
assert c.getresponse().status == 200
deadline = time.monotonic() + 10
while time.monotonic() < deadline:      # the exporter starts with the first span
    for t in glob.glob("/proc/self/task/*"):
        if open(t + "/comm").read().strip() == "meshim-otlp":
            f = open(t + "/stat").read().rsplit(")", 1)[1].split()
            nice, policy = int(f[16]), int(f[38])
            if nice != int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[16]):
                print(nice, policy)
                sys.exit(0)
    time.sleep(0.01)
print("no exporter thread with its own priority")
PY
}
got=$(exporter_sched env) || fail "exporter: $got"
[ "$got" = "10 0" ] || fail "the exporter of a program at nice 0 runs at '$got' (nice, policy), not '10 0'"
got=$(exporter_sched nice -n 15) || fail "exporter: $got"
[ "$got" = "19 0" ] || fail "the exporter of a program at nice 15 runs at '$got', not '19 0'"
if chrt -f 1 true 2>/dev/null; then
    got=$(exporter_sched chrt -f 1) || fail "exporter: $got"
    [ "$got" = "10 0" ] || fail "the exporter of a SCHED_FIFO program runs at '$got', not time-shared at nice 10"
    ok "the exporter runs ten nice levels below the program (19 at most), time-shared even under chrt -f"
else
    ok "the exporter runs ten nice levels below the program (19 at most); chrt -f not allowed here"
fi
