# make bench cannot rot: one short round of every row, and the table, the
# targets and the chart come out.
. "$(dirname "$0")/lib.sh"
case "$MESHIM_PRELOAD" in *libasan*) echo "skip: the benchmark measures the plain build"; exit 77 ;; esac

bench/run -d 1 -r 1 -o "$TMP/results" > "$TMP/bench.log" 2>&1 || fail "bench/run failed: $(tail -5 "$TMP/bench.log")"
md=$TMP/results/latest.md
for row in "| direct |" "| passthrough" "| mesh plain |" "| mesh plain, stats_dir = off |" "| mesh plain, shared_state = off |" "| mesh mTLS |" "| HAProxy mTLS pair |" "| stunnel mTLS pair |"; do
    grep -qF "$row" "$md" || fail "row '$row' missing from latest.md"
done
grep -q "failed requests" "$md" && fail "requests failed in the benchmark: $(grep 'failed requests' "$md")"
grep -q "shim loaded, not meshed: ≥ 0.98" "$md" || fail "targets missing"
grep -q "stats on vs stats_dir = off: keep-alive" "$md" || fail "stats cost line missing"
grep -q "Start-up of \`/bin/true\`" "$md" || fail "start-up line missing"
grep -q "idle mTLS connection | client [0-9.-]* KiB, server [0-9.-]* KiB" "$md" \
    || fail "memory per idle mTLS connection not measured: $(grep 'idle mTLS' "$md")"
[ "$(head -c 8 "$TMP/results/latest.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "latest.png is not a PNG"
ok "bench/run -d 1 -r 1: every row measured, table and chart written"
