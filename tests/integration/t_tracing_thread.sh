# trace_propagation = thread: a python3 ThreadingHTTPServer (trace_front.py)
# that calls another meshed service while it serves, forwarding no header,
# makes one connected trace: a meshed client's span → the front's server span →
# the front's client span → the upstream's server span. Then what must
# never happen does not:
# - 8 clients at once, keep-alive, each request with its own trace, the
#   front's upstream connections shared by its threads: every call joins
#   its own request's trace, none another's;
# - two requests pipelined in one write (one read takes both heads): no
#   context rides on either call;
# - one thread serving two connections by turns (an event loop): none;
# - trace_propagation = headers: the call starts a trace of its own.
. "$(dirname "$0")/lib.sh"
shims python3

start_otlp_receiver
start_traced_upstream

# front_ini FILE PORT PROPAGATION: the front's config.
front_ini() {
    cat > "$1" <<INI
[tracing]
otlp_endpoint = http://127.0.0.1:$otlp/v1/traces
service_name = orders
trace_propagation = $3
[inbound:$2]
tls = off
protocol = http
[service:inventory]
endpoints = 127.0.0.3:$inv
protocol = http
INI
}
# start_front MODE PORT PROPAGATION
start_front() {
    front_ini "$TMP/front-$2.ini" "$2" "$3"
    MESHIM_CONFIG=$TMP/front-$2.ini shimmed python3 tests/integration/trace_front.py "$1" 127.0.0.2 "$2" \
        "http://inventory:$inv/header/traceparent" > "$TMP/front-$2.out" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.2 "$2"
}
front=$(free_port)
start_front threads "$front" thread

# --- 1. one connected trace ------------------------------------------------
traced_get orders "127.0.0.2:$front" "http://orders:$front/call/1"
spans_where "s['traceId'] == '$trace'" 4 || fail "the trace's four spans never arrived: $(cat "$TMP/spans")"
python3 - "$TMP/spans" "$trace" "$call_span" > "$TMP/trace.txt" <<'PY' || fail "the trace: $(cat "$TMP/trace.txt")"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1])]
trace, call_id = sys.argv[2], sys.argv[3]
mine = {s["spanId"]: s for s in spans if s["traceId"] == trace}
assert len(mine) == 4, mine
def one(service, kind):
    [s] = [s for s in mine.values() if s["service"] == service and s["kind"] == kind]
    return s
client, front_in, front_out, inv = one("python3", 3), one("orders", 2), one("orders", 3), one("inventory", 2)
assert "parentSpanId" not in client, client
assert front_in["parentSpanId"] == client["spanId"], front_in
assert front_out["parentSpanId"] == front_in["spanId"], front_out
assert front_out["spanId"] == call_id, (front_out, call_id)
assert inv["parentSpanId"] == front_out["spanId"], inv
assert front_in["attrs"]["url.path"] == "/call/1" and front_out["attrs"]["url.full"].endswith("/header/traceparent")
# The front's call lies inside the request it served.
assert int(front_in["startTimeUnixNano"]) <= int(front_out["startTimeUnixNano"]) <= \
    int(front_out["endTimeUnixNano"]) <= int(front_in["endTimeUnixNano"]) + 10**6, (front_in, front_out)
for s in (client, front_in, front_out, inv):
    print("  %-9s %-6s span %s parent %s %s" % (s["service"], {2: "server", 3: "client"}[s["kind"]], s["spanId"],
          s.get("parentSpanId", "-" * 16), s["attrs"].get("url.path") or s["attrs"].get("url.full")))
PY
cat "$TMP/trace.txt"
ok "trace_propagation = thread: python3 → orders (ThreadingHTTPServer, no header forwarded) → inventory: one trace $trace, four spans, each the child of the one before"

# clients URL N THREADS: N requests in all from THREADS threads, keep-alive,
# each with its own sampled traceparent; prints "same other none" counts
# of the trace the upstream was sent: the request's own, another's, none
# of them (a new trace).
clients() {
    python3 - "$1" "$2" "$3" <<'PY'
import http.client, os, sys, threading, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
n, threads = int(sys.argv[2]), int(sys.argv[3])
sent, got, lock = set(), [], threading.Lock()
def run(k):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    for i in range(n // threads):
        t = os.urandom(16).hex()
        with lock:
            sent.add(t)
        c.request("GET", "%s%d" % (u.path, k * 100 + i), headers={"traceparent": "00-%s-%s-01" % (t, os.urandom(8).hex())})
        r = c.getresponse()
        body = r.read().decode().strip()
        assert r.status == 200, (r.status, body)
        with lock:
            got.append((t, body.split("-")[1] if body.count("-") == 3 else ""))
ths = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
[t.start() for t in ths]
[t.join() for t in ths]
same = sum(1 for t, up in got if up == t)
other = sum(1 for t, up in got if up != t and up in sent)
print(same, other, len(got) - same - other)
PY
}

# --- 2. eight clients at once ---------------------------------------------
read -r same other none < <(clients "http://127.0.0.2:$front/call/" 80 8) || fail "the clients failed"
[ "$other" = 0 ] || fail "$other calls joined another request's trace"
[ "$same" = 80 ] || fail "only $same of 80 calls joined their request's trace ($none started their own)"
ok "8 clients at once, keep-alive, the upstream connections shared by the front's threads: 80 of 80 calls in their own request's trace, none in another's"

# --- 3. pipelined: one read takes two heads --------------------------------
python3 - 127.0.0.2 "$front" > "$TMP/pipelined.txt" <<'PY' || fail "pipelined: $(cat "$TMP/pipelined.txt")"
import os, socket, sys
t1, t2 = os.urandom(16).hex(), os.urandom(16).hex()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
req = "GET /call/0 HTTP/1.1\r\nhost: orders\r\ntraceparent: 00-%s-%s-01\r\n\r\n"
s.sendall(((req % (t1, "1" * 16)) + (req % (t2, "2" * 16))).encode())
data = b""
while data.count(b"\n00-") < 2:
    more = s.recv(65536)
    assert more, data
    data += more
ups = [l.split("-")[1] for l in data.decode().splitlines() if l.startswith("00-")]
print(ups)
assert len(ups) == 2 and t1 not in ups and t2 not in ups, (t1, t2, ups)
PY
ok "two requests pipelined in one write: neither call carries a request's context ($(cat "$TMP/pipelined.txt"))"

# --- 4. one thread, two connections by turns ------------------------------
loop=$(free_port)
start_front loop "$loop" thread
read -r same other none < <(clients "http://127.0.0.2:$loop/call/" 2 2) || fail "the clients of the loop failed"
[ "$same $other $none" = "0 0 2" ] || fail "a thread serving two connections at once: same=$same other=$other none=$none (want 0 0 2)"
ok "one thread reading two connections' requests before it calls: the call carries neither's context"

# --- 5. trace_propagation = headers: the call is a trace of its own --------
plain=$(free_port)
start_front threads "$plain" headers
read -r same other none < <(clients "http://127.0.0.2:$plain/call/" 4 1) || fail "the clients failed"
[ "$same $other $none" = "0 0 4" ] || fail "headers: same=$same other=$other none=$none"
ok "trace_propagation = headers: the front's calls start traces of their own (the application forwards nothing)"
