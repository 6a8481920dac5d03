# The chaos run's table (see run): per client, requests, connections and
# requests failed, connect p50/p99; per fault, the time to eject the
# endpoint and to take it back. Exit 1 if a connection failed, or a request
# failed outside a fault (its window, plus 3 s for what was in flight).
import json, os, re, sys

tmp, T = sys.argv[1], int(sys.argv[2])
start = int(open(tmp + "/start_ms").read())
ADDR = {"b1": "10.77.0.11", "b2": "10.77.0.12", "b3": "10.77.0.13"}
faults = []
for line in open(tmp + "/faults.txt"):
    name, host, t0, t1 = line.split()
    faults.append((name, host, int(t0), int(t1)))
IN_FLIGHT_MS = 3000
def during(t):
    return next((f[0] for f in faults if f[2] <= t <= f[3] + IN_FLIGHT_MS), None)

bad = []
print("%-16s %8s %8s %11s %9s %9s %9s" % ("client", "requests", "ok", "conn failed", "req failed", "conn p50", "conn p99"))
for c in ("asyncio-plain", "blocking-plain", "asyncio-mtls", "blocking-mtls"):
    rows = [json.loads(l) for l in open("%s/%s.jsonl" % (tmp, c))]
    ok = [r for r in rows if r["what"] == "ok"]
    # A connect that the backend reset as it was killed (the connection was
    # made, then the host died under it) is a request in flight on a killed
    # backend, not a connection the mesh failed to make.
    for r in rows:
        if r["what"] == "connect" and r["err"] == "ECONNRESET" and during(r["t"] - start) == "kill-9":
            r["what"] = "request"
    conn_failed = [r for r in rows if r["what"] == "connect"]
    req_failed = [r for r in rows if r["what"] == "request"]
    cms = sorted(r["connect_ms"] for r in rows if r["what"] != "connect")
    pct = lambda q: cms[min(len(cms) - 1, int(len(cms) * q))] if cms else float("nan")
    where = {}
    for r in req_failed:
        k = during(r["t"] - start) or "outside a fault"
        where[k] = where.get(k, 0) + 1
    print("%-16s %8d %8d %11d %9d %8.1fms %8.1fms  %s" % (c, len(rows), len(ok), len(conn_failed), len(req_failed),
          pct(0.5), pct(0.99), ", ".join("%s: %d" % kv for kv in sorted(where.items()))))
    if conn_failed:
        bad.append("%s: %d connections failed (%s)" % (c, len(conn_failed),
                   ", ".join("%s at %.1f s" % (r["err"], (r["t"] - start) / 1000) for r in conn_failed[:8])))
    if "outside a fault" in where:
        bad.append("%s: %d requests failed outside a fault" % (c, where["outside a fault"]))
    if len(ok) < 100:
        bad.append("%s: only %d requests served" % (c, len(ok)))

for s in ("plain", "mtls"):
    out = open("%s/wrk-%s.out" % (tmp, s)).read()
    n = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    print("%-16s %8s requests, non-2xx %s, socket errors %s, latency p99 %s" % (
        "nginx+wrk-" + s, n.group(1) if n else "?", non2xx.group(1) if non2xx else 0,
        errs.group(1) if errs else "none", p99.group(1) if p99 else "?"))

# Ejection: samples "t metric{service=..,endpoint=..} value".
samples = {}
if os.path.exists(tmp + "/ejected.txt"):
    for line in open(tmp + "/ejected.txt"):
        m = re.match(r'(\d+) meshim_endpoint_ejected\{.*service="([^"]+)",endpoint="([^"]+)"\} (\d+)', line)
        if m:
            samples.setdefault((m.group(2), m.group(3)), []).append((int(m.group(1)), int(m.group(4))))
print("%-10s %-4s %7s %7s   %s" % ("fault", "host", "from s", "to s", "time to eject / to take back (per service)"))
for name, host, t0, t1 in faults:
    cells = []
    for s, port in (("orders-plain", 8080), ("orders-mtls", 8443)):
        ss = samples.get((s, "%s:%d" % (ADDR[host], port)), [])
        # An ejection counts for this fault only inside its window (plus
        # what was in flight): a later one belongs to a later fault.
        ej = next((t for t, v in ss if t0 <= t <= t1 + IN_FLIGHT_MS and v == 1), None)
        back = next((t for t, v in ss if ej is not None and t >= max(t1, ej) and v == 0), None)
        cells.append("%s %s / %s" % (s.split("-")[1], "%.1f s" % ((ej - t0) / 1000) if ej is not None else "not ejected",
                                     "%.1f s" % ((back - t1) / 1000) if back is not None else "-"))
    print("%-10s %-4s %7.1f %7.1f   %s" % (name, host, t0 / 1000, t1 / 1000, "; ".join(cells)))

for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
