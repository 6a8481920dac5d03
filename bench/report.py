#!/usr/bin/env python3
"""bench/report.py — turns bench/run's measurements into the Markdown table
(medians of the rounds, ratios to direct and to the HAProxy pair, SPEC §4
targets met or not) and a PNG chart drawn with gnuplot."""
import json
import os
import statistics
import subprocess
import sys
import time


data = {}    # (row, test) -> the rounds' measurements, dicts of floats
extra = {}   # ("sys" | "idle", row) -> one measurement (the kernel TLS table's)


def load(results):
    """Reads bench/run's tab-separated lines into data and extra."""
    with open(results) as f:
        for line in f:
            rnd, row, test, fields = line.rstrip("\n").split("\t")
            d = {k: float(v) for k, v in (kv.split("=") for kv in fields.split())}
            if rnd in ("sys", "idle"):
                extra[(rnd, row)] = d
            else:
                d["round"] = rnd
                data.setdefault((row, test), []).append(d)


def med(row, test, key):
    runs = data.get((row, test))
    return statistics.median(r[key] for r in runs) if runs else None


def paired(row, test, key, base):
    """Median over rounds of row/base measured in the same round: the rows
    of one round share the machine's state, so their ratio is what drift
    does not move."""
    a = {r["round"]: r[key] for r in data.get((row, test), [])}
    b = {r["round"]: r[key] for r in data.get((base, test), [])}
    ratios = [a[k] / b[k] for k in a if k in b and b[k]]
    return statistics.median(ratios) if ratios else None


def errors(row, tests=("keepalive", "conn", "bulk")):
    return sum(max(r["errors"], 0) for t in tests for r in data.get((row, t), []))


def no_result(rows=None, tests=None):
    """Runs whose client printed no result (errors=-1: it did not start, or died)."""
    return sum(1 for (row, test), runs in data.items() for r in runs
               if r["errors"] < 0 and (rows is None or row in rows) and (tests is None or test in tests))


def flaw(row, tests=("keepalive", "conn", "bulk")):
    """What follows a row's name when some of its runs went wrong."""
    failed, lost = errors(row, tests), no_result((row,), tests)
    said = ([f"{failed:.0f} failed requests"] if failed else []) + ([f"{lost} of its runs gave no result"] if lost else [])
    return f" (**{'; '.join(said)}**)" if said else ""


def failed_total():
    failed, lost = sum(errors(row, (test,)) for row, test in data), no_result()
    return f"{failed:.0f} failed" + (f", {lost} runs with no result" if lost else ""), failed == 0 and lost == 0


def fmt(v, scale=1.0, digits=0):
    return "—" if v is None else f"{v * scale:,.{digits}f}"


def target(desc, value, ok):
    if value is None:
        return f"| {desc} | not measured | — |"
    return f"| {desc} | {value} | {'met' if ok else '**not met**'} |"


def ktls_report(secs, rounds, out):
    """The kernel TLS table (bench/run -k, inside user-mode Linux)."""
    rows = [("direct", "direct"), ("mesh-relay", "mesh mTLS, relayed (ktls = off)"),
            ("mesh-mtls", "mesh mTLS, kernel TLS"), ("haproxy", "HAProxy mTLS pair")]
    when = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [f"Measured {when} inside user-mode Linux (Debian's linux.uml 6.1, one vCPU, loopback; "
             f"every system call costs several host context switches there, so absolute figures are "
             f"far below the host's and only the ratios carry over) by `make bench` (`bench/run -k -d {secs} "
             f"-r {rounds}` through `tests/uml/run`): nginx `return 200` and a 1 MiB file, wrk with 16 "
             f"connections after an unmeasured warm-up (`bench/wrk.lua`); rows interleaved, median of {rounds} rounds, ratios the median of per-round "
             f"ratios. CPU and system calls per request count every process of the row (wrk, the shim in "
             f"it, nginx, the proxies); system calls are the steady state's (strace -c: what a 6 s "
             f"keep-alive run made beyond a 3 s one, so start-up and handshakes cancel); kTLS sockets: how many sockets the kernel encrypted for during "
             f"the keep-alive run (/proc/net/tls_stat). Failed requests in the kernel TLS row are wrk's: "
             f"on Linux 6.1 poll reports a kernel TLS socket readable while a record is still partial, "
             f"and wrk counts the EAGAIN of the read that follows as an error (README, kernel TLS). The kernel "
             f"TLS row runs ChaCha20-Poly1305: this guest's kernel has only its C AES, and a meshed client "
             f"then offers that suite first (README, kernel TLS; t_ktls_cipher). The HAProxy pair and the "
             f"relay run AES-GCM in OpenSSL, with the CPU's AES instructions.", "",
             "| row | keep-alive req/s | p50 ms | p99 ms | conn/s | 1 MiB GB/s | CPU µs/req | syscalls/req "
             "| kTLS sockets | req/s ÷ direct | req/s ÷ HAProxy | p99 ÷ HAProxy | conn/s ÷ HAProxy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, name in rows:
        if (key, "keepalive") not in data:
            continue
        rps = med(key, "keepalive", "rps")
        cpu_us = med(key, "keepalive", "cpu") / (rps * float(secs)) * 1e6 if rps else None
        sc = extra.get(("sys", key))
        per_req = (sc["client"] + sc["server"]) / sc["requests"] if sc and sc["requests"] else None
        lines.append(
            f"| {name}{flaw(key)} | {fmt(rps)} "
            f"| {fmt(med(key, 'keepalive', 'p50'), 1e-3, 3)} | {fmt(med(key, 'keepalive', 'p99'), 1e-3, 3)} "
            f"| {fmt(med(key, 'conn', 'rps'))} | {fmt(med(key, 'bulk', 'bps'), 1e-9, 2)} | {fmt(cpu_us, 1, 1)} "
            f"| {fmt(per_req, 1, 1)} | {fmt(med(key, 'keepalive', 'ktls'))} "
            f"| {fmt(paired(key, 'keepalive', 'rps', 'direct'), 1, 2)} | {fmt(paired(key, 'keepalive', 'rps', 'haproxy'), 1, 2)} "
            f"| {fmt(paired(key, 'keepalive', 'p99', 'haproxy'), 1, 2)} | {fmt(paired(key, 'conn', 'rps', 'haproxy'), 1, 2)} |")
    lines.append("")
    lines += ["| issue 19 target (user-mode Linux) | measured | |", "|---|---|---|"]
    engaged = med("mesh-mtls", "keepalive", "ktls")
    lines.append(target("the kernel TLS row ran over kernel TLS (both ends of 16 connections)",
                        engaged is not None and f"{engaged:.0f} sockets", (engaged or 0) >= 32))
    v = paired("mesh-mtls", "keepalive", "rps", "direct")
    lines.append(target("kernel TLS keep-alive ≥ 0.8 × direct", v and f"{v:.2f}", v and v >= 0.8))
    v = paired("mesh-mtls", "keepalive", "rps", "haproxy")
    lines.append(target("kernel TLS keep-alive ≥ 3 × the HAProxy pair", v and f"{v:.2f}", v and v >= 3))
    v = paired("mesh-mtls", "keepalive", "p99", "haproxy")
    lines.append(target("kernel TLS p99 ≤ 1/3 of the HAProxy pair", v and f"{v:.2f}", v and v <= 1 / 3))
    v = paired("mesh-mtls", "conn", "rps", "haproxy")
    lines.append(target("new mTLS connections/s ≥ 4 × the HAProxy pair (issue 19 asks it on the host)",
                        v and f"{v:.2f}", v and v >= 4))
    plain = extra.get(("idle", "direct"))
    for key, name in (("mesh-relay", "relayed"), ("mesh-mtls", "kernel TLS")):
        m = extra.get(("idle", key))
        if plain and m:
            n = m["n"]
            lines.append(target(f"memory per idle {name} connection (growth over a plain one; reported)",
                                f"client {(m['client'] - plain['client']) / n:.1f} KiB, server "
                                f"{(m['server'] - plain['server']) / n:.1f} KiB ({n:.0f} connections)", True))
    table = "\n".join(lines) + "\n"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "ktls.md"), "w") as f:
        f.write("# meshim benchmark: kernel TLS\n\n" + table)
    print(table)


def rtt_report(secs, rounds, out):
    """The round-trip table (bench/run -t, user-mode Linux with tc netem)."""
    rows = [("direct", "direct"), ("mesh", "mesh plain"), ("mesh-mtls", "mesh mTLS"),
            ("haproxy", "HAProxy mTLS pair")]
    when = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [f"Measured {when} inside user-mode Linux (one vCPU; absolute figures are far below the "
             f"host's, ratios carry over) by `make bench` (`bench/run -t -d {secs} -r {rounds}` through "
             f"`tests/uml/run -m sch_netem`), with `tc qdisc add dev lo root netem delay D` (so a round "
             f"trip takes 2 D and every non-blocking connect returns EINPROGRESS, as on a real network). "
             f"Client: bench/connrate, 16 connections at once, each a non-blocking connect, one "
             f"`GET /` with `Connection: close`, the answer read, close; server nginx `return 200`. "
             f"conn/s: completed connections per second; connect: from connect() to writable (for mTLS "
             f"the handshake is in it: the shim reports the socket connected after it); in connect(): "
             f"the time the program's thread spends inside the call. Rows interleaved, median of "
             f"{rounds} rounds; ratios the median of per-round ratios.", ""]
    for delay in ("1", "10"):
        test = "rtt" + delay
        lines += [f"**{delay} ms each way** (round trip {2 * int(delay)} ms)", "",
                  "| row | conn/s | connect p50 ms | connect p99 ms | in connect() p50 µs "
                  "| in connect() p99 µs | failed | conn/s ÷ direct |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key, name in rows:
            if (key, test) not in data:
                continue
            lines.append(
                f"| {name} | {fmt(med(key, test, 'rate'))} | {fmt(med(key, test, 'connect_p50'), 1e-3, 2)} "
                f"| {fmt(med(key, test, 'connect_p99'), 1e-3, 2)} | {fmt(med(key, test, 'call_p50'))} "
                f"| {fmt(med(key, test, 'call_p99'))} | {errors(key, (test,)):.0f} "
                f"| {fmt(paired(key, test, 'rate', 'direct'), 1, 2)} |")
        lines.append("")
    lines += ["| issue 18 target (user-mode Linux, netem) | measured | |", "|---|---|---|"]
    v = paired("mesh", "rtt1", "rate", "direct")
    lines.append(target("mesh plain new connections ≥ 0.95 × direct at 1 ms", v and f"{v:.2f}", v and v >= 0.95))
    v = paired("mesh", "rtt10", "rate", "direct")
    lines.append(target("mesh plain new connections at 10 ms (reported)", v and f"{v:.2f} × direct", True))
    v = paired("mesh-mtls", "rtt1", "rate", "haproxy")
    lines.append(target("mesh mTLS new connections at 1 ms (reported)", v and f"{v:.2f} × the HAProxy pair", True))
    lines.append(target("no failed connection in any row", *failed_total()))
    table = "\n".join(lines) + "\n"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rtt.md"), "w") as f:
        f.write("# meshim benchmark: real round trips\n\n" + table)
    print(table)


def with_direct(row, test, fn):
    """Median over rounds of fn(row's measurement, direct's of the same
    round and load): what the row adds over no mesh at all."""
    base = {r["round"]: r for r in data.get(("direct", test), [])}
    vals = [fn(r, base[r["round"]]) for r in data.get((row, test), []) if r["round"] in base]
    return statistics.median(vals) if vals else None


# Per 1000 requests/s, per end: the CPU (vCPU) and the memory (MB) a row's
# mesh costs over direct. meshim: the threads it runs in the program (the
# client's cpu_other, the server's srv_other) plus what the program's own
# thread spent over direct's; memory: the program's RSS over direct's.
# HAProxy: its process at that end, whole.
def cpu_end(row, end, r, d, per_k):
    if row.startswith("haproxy"):
        v = r[f"px_{end}_cpu"] / r["run"]
    elif end == "client":
        v = (r["cpu_other"] + r["cpu_main"] - d["cpu_main"]) / r["window"]
    else:
        v = (r["srv_other"] + r["srv_main"] - d["srv_main"]) / r["run"]
    return v / per_k


def mem_end(row, end, r, d):
    if row.startswith("haproxy"):
        return r[f"px_{end}_rss"] / 1024
    return (r["rss_kb"] - d["rss_kb"]) / 1024 if end == "client" else (r["srv_rss"] - d["srv_rss"]) / 1024


ISTIO = ("Istio's published figures (istio.io, Performance and Scalability, Istio 1.24; 1000 HTTP "
         "requests/s with 1 KB payloads; quoted, not measured here): a sidecar (Envoy, 2 worker threads) "
         "about 0.20 vCPU and 60 MB; a waypoint proxy about 0.25 vCPU and 60 MB; a ztunnel about 0.06 vCPU "
         "and 12 MB; ambient mode (two ztunnels) adds about 0.17 ms at p90 and 0.20 ms at p99.")


UML_CPU = ("user-mode Linux samples CPU time per tick on its one vCPU: 30 s of the client's work read as "
           "0.00 to 0.20 s, and a whole row's as 4.4 s once; the host table has the CPU figures")


# The rows of the fixed-rate tables, in the order they are shown.
FIXED_ROWS = ("direct", "mesh", "mesh-relay", "mesh-mtls", "haproxy", "mesh-http", "mesh-mtls-http", "haproxy-http")


def fixed_report(secs, rounds, warmup, out, name, in_uml):
    """The fixed-rate table (bench/run -f)."""
    labels = {"direct": "direct", "mesh": "mesh plain", "mesh-mtls": "mesh mTLS" + (", kernel TLS" if in_uml else " (relay)"),
              "mesh-relay": "mesh mTLS, relay (ktls = off)", "haproxy": "HAProxy mTLS pair",
              "mesh-http": "mesh http (protocol = http, plain)",
              "mesh-mtls-http": "mesh mTLS http (protocol = http, tls = mtls)",
              "haproxy-http": "HAProxy mTLS pair, mode http"}
    ran = {row for (row, _) in data}
    keys = [k for k in FIXED_ROWS if k in ran]
    loads = list(dict.fromkeys(t for (_, t) in data))   # as run: the first is the main one
    when = time.strftime("%Y-%m-%d", time.gmtime())
    where = ("inside user-mode Linux (Debian's linux.uml 6.1, one vCPU: absolute figures far below a host's; "
             "the ratios carry over)" if in_uml else f"on this machine ({os.cpu_count()} cores, loopback)")
    name_opt = "" if name in ("fixedrate", "fixedrate-ktls") else f" -n {name}"
    lines = [f"Measured {when} {where} by `make bench` (`bench/run -f{' -k' if in_uml else ''} -d {secs} -r {rounds} "
             f"-w {warmup} -R {','.join(keys)} -C {','.join(loads)}{name_opt}`): bench/ratebench sends `GET /1k` "
             f"(a 1 KiB body from nginx) open-loop at a fixed "
             f"rate over keep-alive connections, and times each request from when it was due, not from when "
             f"it was sent (wrk2's correction for coordinated omission). Each load ran {warmup} s of warm-up "
             f"and {secs} s measured, rows interleaved, median of {rounds} rounds; *added* is the row's "
             f"percentile minus direct's of the same round. vCPU is per 1000 requests/s and MB what the row "
             f"holds at its rate, per end (client, server): for meshim its own threads in the program plus the program's extra CPU "
             f"over direct (/proc/PID/task/TID/stat) and the program's resident memory over direct's; for "
             f"HAProxy its process at that end." + ("" if in_uml else " The client is pinned to CPU 0, nginx to CPU 1."), ""]
    for load in loads:
        rate, conns = (int(x) for x in load.split("x"))
        per_k = rate / 1000
        lines += [f"**{rate} requests/s, {connections(conns)}**", "",
                  "| row | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 | added p90 "
                  "| added p99 | added p99.9 | vCPU client / server | MB client / server |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key in keys:
            if (key, load) not in data:
                continue
            pct = [med(key, load, p) for p in ("p50", "p90", "p99", "p999")]
            added = [with_direct(key, load, lambda r, d, p=p: r[p] - d[p]) for p in ("p50", "p90", "p99", "p999")]
            if key == "direct":
                cost = "—", "—"
            else:
                cpu = [with_direct(key, load, lambda r, d, e=e: cpu_end(key, e, r, d, per_k)) for e in ("client", "server")]
                mem = [with_direct(key, load, lambda r, d, e=e: mem_end(key, e, r, d)) for e in ("client", "server")]
                cost = f"{fmt(cpu[0], 1, 3)} / {fmt(cpu[1], 1, 3)}", f"{fmt(mem[0], 1, 1)} / {fmt(mem[1], 1, 1)}"
                if in_uml:   # see UML_CPU
                    cost = "—", cost[1]
            lines.append(f"| {labels[key]}{flaw(key, (load,))}{behind(key, load)} "
                         f"| {fmt(med(key, load, 'rate'))} | " + " | ".join(fmt(v, 1, 3) for v in pct) + " | "
                         + " | ".join("—" if key == "direct" else f"{v:+.3f}" if v is not None else "—" for v in added)
                         + f" | {cost[0]} | {cost[1]} |")
        lines.append("")
    lines += [ISTIO, ""]
    main = loads[0]
    lines += [f"| target ({'user-mode Linux' if in_uml else 'host'}, open-loop) | measured | |", "|---|---|---|"]
    lines += equal_load_targets(loads, in_uml)
    if ("mesh-mtls", main) in data:
        lines += issue23_targets(main, in_uml)
    lines.append(target("no failed request in any row", *failed_total()))
    table = "\n".join(lines) + "\n"
    os.makedirs(out, exist_ok=True)
    title = "fixed request rate" + (", kernel TLS in user-mode Linux" if in_uml else "")
    with open(os.path.join(out, name + ".md"), "w") as f:
        f.write(f"# meshim benchmark: {title}\n\n" + table)
    print(table)
    fixed_chart(main, keys, labels, out, name, when, in_uml)


def connections(n):
    return f"{n} connection{'' if int(n) == 1 else 's'}"


def at_load(load):
    """'5000x16' as '5,000 requests/s over 16 connections'."""
    rate, conns = load.split("x")
    return f"{int(rate):,} requests/s over {connections(conns)}"


def behind(row, load):
    """A row whose median request waited 100 ms or more did not keep up
    with the rate: its latency is its queue's growth, not its cost."""
    p50 = med(row, load, "p50")
    return " (**fell behind the rate**)" if p50 is not None and p50 >= 100 else ""


def equal_load_targets(loads, in_uml):
    """The p99 targets of SPEC §4 (mTLS, ⅓ of the HAProxy pair; issue 19's
    for kernel TLS in user-mode Linux) and issue 20 (mTLS http, ½ of the
    pair in mode http), at one offered load: the median over rounds of the
    row's p99 over the pair's of the same round, for each load both ran."""
    lines = []
    mtls = "mTLS p99 ≤ ⅓ of the HAProxy pair's (" + ("issue 19" if in_uml else "SPEC §4") + ")"
    for row, pair, share, desc in (("mesh-mtls", "haproxy", 1 / 3, mtls),
                                   ("mesh-mtls-http", "haproxy-http", 1 / 2,
                                    "protocol = http over mTLS: p99 ≤ ½ of the HAProxy pair's in mode http (issue 20)")):
        for load in loads:
            v = paired(row, load, "p99", pair)
            if v is None:
                continue
            what = f"{desc}, both at {at_load(load)}"
            slow = [r for r in (row, pair) if behind(r, load)]
            if slow:   # a queue's growth against a cost: no comparison
                lines.append(f"| {what} | {v:.2f}; {' and '.join(slow)} fell behind the rate | — |")
            else:
                lines.append(target(what, f"{v:.2f}", v <= share))
    return lines


def issue23_targets(main, in_uml):
    """Issue 23's targets, at the first load: what mesh mTLS adds."""
    mtls = "mesh-mtls"
    rate = main.split("x")[0]
    head = f"issue 23, {at_load(main)}: mesh mTLS"
    lines = []
    v = with_direct(mtls, main, lambda r, d: r["p99"] - d["p99"])
    lines.append(target(f"{head} adds ≤ 0.10 ms at p99 over direct", v is not None and f"{v:+.3f} ms",
                        v is not None and v <= 0.10))
    per_k = int(rate) / 1000
    cpu = [with_direct(mtls, main, lambda r, d, e=e: cpu_end(mtls, e, r, d, per_k)) for e in ("client", "server")]
    ok = all(c is not None for c in cpu) and not in_uml
    lines.append(target(f"{head} ≤ 0.03 vCPU per 1000 requests/s per end",
                        ok and f"client {cpu[0]:.3f}, server {cpu[1]:.3f}", ok and max(cpu) <= 0.03)
                 if not in_uml else f"| {head} ≤ 0.03 vCPU per 1000 requests/s per end | not measurable here "
                 "(" + UML_CPU + ") | — |")
    mem = [with_direct(mtls, main, lambda r, d, e=e: mem_end(mtls, e, r, d)) for e in ("client", "server")]
    ok = all(m is not None for m in mem)
    lines.append(target(f"{head} ≤ 2 MB per 1000 requests/s per end (added at {rate} requests/s)",
                        ok and f"client {mem[0]:.1f} MB, server {mem[1]:.1f} MB", ok and max(mem) <= 2))
    return lines


def fixed_chart(main, keys, labels, out, name, when, in_uml):
    """Latency by percentile at the main load, one line a row, and
    ambient's published p90/p99 added over this run's direct."""
    if (("direct", main)) not in data:
        return
    rate, conns = main.split("x")
    dat = os.path.join(out, name + ".dat")
    keys = [k for k in keys if (k, main) in data]
    with open(dat, "w") as f:
        for i, p in enumerate(("p50", "p90", "p99", "p999")):
            f.write(f'"{p.replace("p999", "p99.9")}" ' + " ".join(f"{med(k, main, p):.4f}" for k in keys))
            d = med("direct", main, p)
            istio = {"p90": 0.17, "p99": 0.20}.get(p)
            f.write(f" {d + istio:.4f}\n" if istio is not None else " NaN\n")
    plots = [f'"{dat}" using {i + 2}:xtic(1) with linespoints lw 2 title "{labels[k]}"' for i, k in enumerate(keys)]
    plots.append(f'"{dat}" using {len(keys) + 2} with points pt 7 ps 1.5 lc rgb "black" '
                 f'title "direct + ambient\'s published added latency (Istio 1.24)"')
    script = f"""
set terminal pngcairo size 1000,520 font ",11"
set output "{os.path.join(out, name + '.png')}"
set title "latency at {rate} requests/s, {conns} connections, 1 KiB answers ({when}{', user-mode Linux' if in_uml else ''}; open-loop, from when each was due)"
set ylabel "ms"
set xlabel "percentile"
set grid ytics
set key top left
set logscale y
plot {", ".join(plots)}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.remove(dat)


if len(sys.argv) > 1 and sys.argv[1] == "--fixed":
    load(sys.argv[2])
    fixed_report(*sys.argv[3:8], bool(sys.argv[8]) if len(sys.argv) > 8 else False)
    sys.exit(0)

if len(sys.argv) > 1 and sys.argv[1] == "--rtt":
    load(sys.argv[2])
    rtt_report(*sys.argv[3:6])
    sys.exit(0)

if len(sys.argv) > 1 and sys.argv[1] == "--ktls":
    load(sys.argv[2])
    ktls_report(*sys.argv[3:6])
    sys.exit(0)

results, startup_json, rss_direct, rss_shim, secs, rounds, out = sys.argv[1:8]
# Idle connections (optional): how many, then KiB grown by the client and the
# server, plainly and over mTLS.
idle = sys.argv[8:13] if len(sys.argv) >= 13 and all(sys.argv[9:13]) else None
# With mTLS configured (optional): resident memory, and the user it ran as.
rss_shim_tls = sys.argv[13] if len(sys.argv) > 13 and sys.argv[13] else None
bench_user = sys.argv[14] if len(sys.argv) > 14 else "this user"
ROWS = [("direct", "direct"), ("passthrough", "passthrough (shim loaded, not meshed)"),
        ("mesh", "mesh plain"), ("mesh-nostats", "mesh plain, stats_dir = off"),
        ("mesh-noshared", "mesh plain, shared_state = off"), ("mesh-mtls", "mesh mTLS"),
        ("mesh-mtls-psk", "mesh mTLS, resumption = psk-only (no key exchange when resumed)"),
        ("haproxy", "HAProxy mTLS pair"), ("stunnel", "stunnel mTLS pair"),
        ("mesh-http", "mesh http (protocol = http, plain)"),
        ("mesh-http-noring", "mesh http, io_uring = off (each of the engine's sends its own call)"),
        ("mesh-http-traced", "mesh http, tracing on (a span per request, OTLP/JSON)"),
        ("mesh-mtls-http", "mesh mTLS http (protocol = http, tls = mtls)"),
        ("haproxy-http", "HAProxy mTLS pair, mode http")]

load(results)

def ratio(v):
    return f"{v:.2f}" if v is not None else "—"

present = [(k, name) for k, name in ROWS if (k, "keepalive") in data]
lines = []
when = time.strftime("%Y-%m-%d", time.gmtime())
lines.append(f"Measured {when} on this machine ({os.cpu_count()} cores, loopback) by `make bench` "
             f"(`bench/run -d {secs} -r {rounds}`): nginx `return 200` and a 1 MiB file (one worker, "
             f"pinned to CPU 1), wrk with 16 connections (pinned to CPU 0), after an unmeasured warm-up of one request "
             f"on each of 16 connections (`bench/wrk.lua` says why; the first answer of a new process is below); "
             f"rows interleaved, median of {rounds} rounds. Ratios are "
             f"the median of per-round ratios (rows of one round ran back to back).")
lines.append("")
lines.append("| row | keep-alive req/s | p50 ms | p99 ms | p99.9 ms | conn/s | 1 MiB GB/s | CPU s | "
             "req/s ÷ direct | req/s ÷ HAProxy | conn/s ÷ direct | conn/s ÷ HAProxy |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key, name in ROWS:
    if (key, "keepalive") not in data:
        continue
    rps, conn = med(key, "keepalive", "rps"), med(key, "conn", "rps")
    lines.append(
        f"| {name}{flaw(key)} | {fmt(rps)} | {fmt(med(key, 'keepalive', 'p50'), 1e-3, 3)} "
        f"| {fmt(med(key, 'keepalive', 'p99'), 1e-3, 3)} | {fmt(med(key, 'keepalive', 'p999'), 1e-3, 3)} "
        f"| {fmt(conn)} | {fmt(med(key, 'bulk', 'bps'), 1e-9, 2)} | {fmt(med(key, 'keepalive', 'cpu'), 1, 1)} "
        f"| {ratio(paired(key, 'keepalive', 'rps', 'direct'))} | {ratio(paired(key, 'keepalive', 'rps', 'haproxy'))} "
        f"| {ratio(paired(key, 'conn', 'rps', 'direct'))} | {ratio(paired(key, 'conn', 'rps', 'haproxy'))} |")

with open(startup_json) as f:
    st = json.load(f)["results"]
t_direct, t_shim = st[0]["mean"] * 1e3, st[1]["mean"] * 1e3
t_tls = st[2]["mean"] * 1e3 if len(st) > 2 else None
rss_added = int(rss_shim) - int(rss_direct)
rss_added_tls = int(rss_shim_tls) - int(rss_direct) if rss_shim_tls else None
lines.append("")
tls_start = (f"; {t_tls:.3f} ms with an mTLS config, as {bench_user} (+{t_tls - t_direct:.3f} ms)"
             if t_tls is not None else "")
tls_rss = f"; {rss_added_tls} KiB with an mTLS config" if rss_added_tls is not None else ""
lines.append(f"Start-up of `/bin/true` (hyperfine -N, 300 runs): {t_direct:.3f} ms direct, "
             f"{t_shim:.3f} ms with the shim and a config (+{t_shim - t_direct:.3f} ms){tls_start}. "
             f"Resident memory added to a program that makes no mesh connection (`cat`, VmRSS, "
             f"median of 5): {rss_added} KiB{tls_rss}.")
lines.append("")
first_json = os.path.join(out, "latest-first.json")
if os.path.exists(first_json):
    with open(first_json) as f:
        first = json.load(f)["results"]
    fa, runs = [x["median"] * 1e3 for x in first], len(first[0]["times"])
    lines.append(f"First answer of a new process (`curl`, one GET, hyperfine -N, {runs} runs, median): "
                 f"{fa[0]:.1f} ms direct; {fa[1]:.1f} ms meshed over mTLS (+{fa[1] - fa[0]:.1f} ms: the TLS module, "
                 f"the identity and a full handshake, once per process); {fa[2]:.1f} ms with protocol = http over "
                 f"mTLS (+{fa[2] - fa[0]:.1f} ms).")
    lines.append("")

def r(a, b):
    return a / b if a is not None and b else None

p_ratio = paired("passthrough", "keepalive", "rps", "direct")
m_ratio = paired("mesh", "keepalive", "rps", "direct")
m_conn = paired("mesh", "conn", "rps", "direct")
lines.append("| SPEC §4 target | measured | |")
lines.append("|---|---|---|")
lines.append(target("shim loaded, not meshed: ≥ 0.98 × direct throughput",
                    p_ratio and f"{p_ratio:.3f}", p_ratio and p_ratio >= 0.98))
lines.append(target("start-up cost of a short program ≤ 1 ms", f"{t_shim - t_direct:.3f} ms",
                    t_shim - t_direct <= 1.0))
if t_tls is not None:
    lines.append(target(f"start-up cost of a short program ≤ 1 ms, mTLS configured (as {bench_user})",
                        f"{t_tls - t_direct:.3f} ms", t_tls - t_direct <= 1.0))
lines.append(target("meshed, no TLS: keep-alive ≥ 0.97 × direct", m_ratio and f"{m_ratio:.3f}",
                    m_ratio and m_ratio >= 0.97))
lines.append(target("meshed, no TLS: new connections ≥ 0.9 × direct", m_conn and f"{m_conn:.3f}",
                    m_conn and m_conn >= 0.9))
s_ratio = paired("mesh", "keepalive", "rps", "mesh-nostats")
s_conn = paired("mesh", "conn", "rps", "mesh-nostats")
lines.append(target("stats on vs stats_dir = off: keep-alive ≥ 0.99 × (issue 5)",
                    s_ratio and f"{s_ratio:.3f}", s_ratio and s_ratio >= 0.99))
lines.append(target("stats on vs stats_dir = off: new connections (no target; each connect counts)",
                    s_conn and f"{s_conn:.3f}", True))
h_conn = paired("mesh", "conn", "rps", "mesh-noshared")
lines.append(target("host endpoint table on vs shared_state = off: new connections within noise, "
                    "≥ 0.95 × (issue 17)", h_conn and f"{h_conn:.3f}", h_conn and h_conn >= 0.95))
t_ka = paired("mesh-mtls", "keepalive", "rps", "haproxy")
lines.append(target("mTLS keep-alive ≥ 2.5 × the HAProxy pair", t_ka and f"{t_ka:.2f}", t_ka and t_ka >= 2.5))
t_p99 = paired("mesh-mtls", "keepalive", "p99", "haproxy")
lines.append(target("mTLS p99 ≤ 1/3 of the HAProxy pair (wrk's closed loop: each row's p99 at its own "
                    "saturation; at one offered load: fixedrate.md)", t_p99 and f"{t_p99:.2f}", t_p99 and t_p99 <= 1 / 3))
t_conn = paired("mesh-mtls", "conn", "rps", "haproxy")
lines.append(target("mTLS new connections/s ≥ 4 × the HAProxy pair", t_conn and f"{t_conn:.2f}",
                    t_conn and t_conn >= 4))
t_conn_psk = paired("mesh-mtls-psk", "conn", "rps", "haproxy")
if t_conn_psk is not None:
    lines.append(target("mTLS new connections/s ≥ 4 × the HAProxy pair, with resumption = psk-only (opt-in: "
                        "resumed connections lose forward secrecy)", f"{t_conn_psk:.2f}", t_conn_psk >= 4))
h_ka = paired("mesh-http", "keepalive", "rps", "direct")
lines.append(target("protocol = http, plain: keep-alive ≥ 0.5 × direct (issue 20)", h_ka and f"{h_ka:.2f}",
                    h_ka and h_ka >= 0.5))
ring_ka = paired("mesh-http", "keepalive", "rps", "mesh-http-noring")
if ring_ka is not None:
    lines.append(target("protocol = http: the engine's sends of a turn in one io_uring call vs one call each "
                        "(no target; what it buys)", f"{ring_ka:.2f}", True))
tr_ka = paired("mesh-http-traced", "keepalive", "rps", "mesh-http")
# A traced row that dropped its spans (a full queue: the shim says how many
# at exit) did not pay for exporting them: the target counts only when at
# most 1 % were dropped.
tr_runs = data.get(("mesh-http-traced", "keepalive"), [])
tr_drop = statistics.median(r.get("spans_dropped", 0.0) for r in tr_runs) if tr_runs else None
lines.append(target("tracing on: keep-alive ≥ 0.95 × the same http row with tracing off, every span exported "
                    "(issue 21; in brackets: the share of spans dropped for a full queue)",
                    tr_ka and f"{tr_ka:.2f} ({tr_drop:.1%} dropped)",
                    tr_ka and tr_ka >= 0.95 and tr_drop <= 0.01))
hm_ka = paired("mesh-mtls-http", "keepalive", "rps", "haproxy-http")
lines.append(target("protocol = http over mTLS: keep-alive ≥ 1.5 × the HAProxy pair in mode http "
                    "(issue 20)", hm_ka and f"{hm_ka:.2f}", hm_ka and hm_ka >= 1.5))
hm_p99 = paired("mesh-mtls-http", "keepalive", "p99", "haproxy-http")
lines.append(target("protocol = http over mTLS: p99 ≤ ½ of the HAProxy pair in mode http (issue 20; wrk's "
                    "closed loop, each at its own saturation; at one offered load: fixedrate-http.md)",
                    hm_p99 and f"{hm_p99:.2f}", hm_p99 and hm_p99 <= 0.5))
if idle:
    n, pc, ps, mc, ms = (int(x) for x in idle)
    per_client, per_server = (mc - pc) / n, (ms - ps) / n
    lines.append(target("≤ 32 KiB per idle mTLS connection",
                        f"client {per_client:.1f} KiB, server {per_server:.1f} KiB ({n} connections, "
                        f"growth over plain connections)", max(per_client, per_server) <= 32))
else:
    lines.append(target("≤ 32 KiB per idle mTLS connection", None, False))
lines.append(target("≤ 2 MiB resident added to a program with no mesh connection", f"{rss_added} KiB",
                    rss_added <= 2048))
if rss_added_tls is not None:
    lines.append(target(f"≤ 2 MiB resident added to a program with no mesh connection, mTLS configured "
                        f"(as {bench_user})", f"{rss_added_tls} KiB", rss_added_tls <= 2048))
table = "\n".join(lines) + "\n"
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "latest.md"), "w") as f:
    f.write("# meshim benchmark\n\n" + table)
print(table)

# Chart: each row's keep-alive, conn/s and bulk relative to direct.
dat = os.path.join(out, "latest.dat")
with open(dat, "w") as f:
    for key, name in present:
        vals = [paired(key, t, m, "direct") or 0
                for t, m in (("keepalive", "rps"), ("conn", "rps"), ("bulk", "bps"))]
        label = {"passthrough": "shim, not meshed", "haproxy": "HAProxy mTLS", "stunnel": "stunnel mTLS"}
        f.write('"%s" %.4f %.4f %.4f\n' % (label.get(key, name.split(" (")[0]), *vals))
script = f"""
set terminal pngcairo size 1000,520 font ",11"
set output "{os.path.join(out, 'latest.png')}"
set title "meshim vs direct and sidecar mTLS pairs ({when}, {os.cpu_count()} cores, loopback; 1.0 = direct)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key top right
set ylabel "relative to direct"
plot "{dat}" using 2:xtic(1) title "keep-alive req/s", "" using 3 title "new conn/s", "" using 4 title "1 MiB throughput"
"""
subprocess.run(["gnuplot"], input=script, text=True, check=True)
os.remove(dat)
