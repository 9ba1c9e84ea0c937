-- report.lua: the done() hook every bench script shares (loaded with dofile). Prints one
-- machine-readable line that scripts/bench.sh parses; wrk's own report stays above it.
-- Times are microseconds; "status" counts answers >= 400, the others socket errors.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect, e.read, e.write, e.timeout))
end
