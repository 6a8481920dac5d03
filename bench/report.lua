-- wrk reporter: one machine-readable line with what bench/run needs,
-- including p99.9, which wrk's own --latency output does not show.
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT rps=%.2f bps=%.0f p50=%.1f p99=%.1f p999=%.1f errors=%d requests=%d\n",
    summary.requests / secs, summary.bytes / secs,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout, summary.requests))
end
