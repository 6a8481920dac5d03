# Tracing with real software on the other side: a Node service instrumented
# with OpenTelemetry's JavaScript SDK (tests/integration/otel_node, its
# packages from npm at the versions its package-lock.json pins, installed
# once into $BUILD/otel-node), running under the shim, called by a meshed
# python3 client, calling a meshed python3 service next. The SDK and the
# mesh export to the same receiver (our own, checking OTLP's JSON field
# names), which then holds one connected trace:
#   python3's mesh client span → Node's server span (the SDK's) → Node's
#   client span (the SDK's) → the mesh's client span in Node → the
#   upstream's server span (the mesh's).
. "$(dirname "$0")/lib.sh"
command -v npm > /dev/null || fail "npm is not installed (make deps installs nodejs, which brings it)"

node_dir=$ROOT/$BUILD/otel-node
src=$ROOT/tests/integration/otel_node
if ! cmp -s "$src/package-lock.json" "$node_dir/package-lock.json" ||
   [ ! -d "$node_dir/node_modules/@opentelemetry/sdk-trace-node" ]; then
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$src/package.json" "$src/package-lock.json" "$node_dir/"
    (cd "$node_dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) > "$TMP/npm.log" 2>&1 ||
        fail "npm ci of OpenTelemetry's JavaScript SDK failed: $(tail -5 "$TMP/npm.log")"
fi
cp "$src/server.js" "$node_dir/"

start_otlp_receiver
start_traced_upstream

shop=$(free_port)
cat > "$TMP/node.ini" <<INI
[tracing]
otlp_endpoint = http://127.0.0.1:$otlp/v1/traces
service_name = node-shop-mesh
[service:inventory]
endpoints = 127.0.0.3:$inv
protocol = http
INI
MESHIM_CONFIG=$TMP/node.ini shimmed node "$node_dir/server.js" 127.0.0.2 "$shop" \
    "http://inventory:$inv/header/traceparent" "http://127.0.0.1:$otlp/v1/traces" > "$TMP/node.out" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$shop"

traced_get shop "127.0.0.2:$shop" "http://shop:$shop/call" "$TMP/node.out"
spans_where "s['traceId'] == '$trace'" 5 ||
    fail "the trace's five spans never arrived: $(cat "$TMP/spans" "$TMP/spans.log" "$TMP/receiver.out" 2>&1 | tail -20)"
python3 - "$TMP/spans" "$trace" > "$TMP/trace.txt" <<'PY' || fail "the trace: $(cat "$TMP/trace.txt")"
import json, sys
spans = [json.loads(l) for l in open(sys.argv[1])]
mine = [s for s in spans if s["traceId"] == sys.argv[2]]
def one(service, kind):
    found = [s for s in mine if s["service"] == service and s["kind"] == kind]
    assert len(found) == 1, (service, kind, mine)
    return found[0]
client = one("python3", 3)                  # the mesh, in the client program
node_in = one("node-shop", 2)               # the SDK: Node's server span
node_out = one("node-shop", 3)              # the SDK: Node's call
mesh_out = one("node-shop-mesh", 3)         # the mesh, in Node
inv = one("inventory", 2)                   # the mesh, in the upstream
assert len(mine) == 5, mine
assert "parentSpanId" not in client, client
assert node_in["parentSpanId"] == client["spanId"], (node_in, client)
assert node_out["parentSpanId"] == node_in["spanId"], node_out
assert mesh_out["parentSpanId"] == node_out["spanId"], mesh_out
assert inv["parentSpanId"] == mesh_out["spanId"], inv
for s in (client, node_in, node_out, mesh_out, inv):
    print("  %-15s %-6s span %s parent %s" % (s["service"], {2: "server", 3: "client"}[s["kind"]], s["spanId"],
          s.get("parentSpanId", "-" * 16)))
PY
cat "$TMP/trace.txt"
ok "python3 → the mesh → Node with OpenTelemetry's SDK → the mesh → python3: one trace $trace, five spans, the SDK's and the mesh's each the child of the one before, all at one receiver"
