-- wrk script of bench/run: a warm-up before wrk measures, and one
-- machine-readable result line (with p99.9, which wrk's own --latency
-- output does not show).
--
-- Why a warm-up. wrk corrects its latencies for coordinated omission: after
-- the run, every request that took longer than the mean interval between
-- one connection's requests is recorded again as the requests that would
-- have waited behind it. A sidecar pair has started long before wrk; the
-- shim starts inside wrk, and its first requests wait for it once (over
-- mTLS: its TLS module, its identity, a full handshake per upstream
-- connection, 20-30 ms for 16 connections here). Corrected, those 16 slow
-- requests become hundreds, and a 5 s run's p99.9 (and p99) is that
-- one-time start, not the proxy. So, as the fixed-rate table's warm-up
-- does, each row's wrk first sends one GET / on each of BENCH_WARMUP
-- connections at once and reads the answers, unmeasured, before its own
-- connections open; the same for every row. bench/run measures that
-- one-time cost on its own (the first answer of a new process).
--
-- The warm-up runs in setup(), in wrk's main thread before its threads
-- start, with LuaJIT's FFI calling libc, so that under the shim the name
-- resolves and the connections go as wrk's own would.
local ffi = require("ffi")
ffi.cdef [[
struct addrinfo { int ai_flags, ai_family, ai_socktype, ai_protocol; unsigned ai_addrlen;
                  void *ai_addr; char *ai_canonname; struct addrinfo *ai_next; };
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res);
void freeaddrinfo(struct addrinfo *res);
int socket(int domain, int type, int protocol);
int connect(int fd, const void *addr, unsigned len);
long write(int fd, const void *buf, unsigned long n);
long read(int fd, void *buf, unsigned long n);
int close(int fd);
]]
local SOCK_STREAM = 1

local function warm_up(n)
  local hints = ffi.new("struct addrinfo", { ai_socktype = SOCK_STREAM })
  local res = ffi.new("struct addrinfo *[1]")
  if ffi.C.getaddrinfo(wrk.host, tostring(wrk.port or 80), hints, res) ~= 0 then
    return "cannot resolve " .. wrk.host
  end
  local ai, req = res[0], "GET / HTTP/1.1\r\nHost: " .. wrk.host .. "\r\n\r\n"
  local fds, buf, why = {}, ffi.new("char[4096]"), nil
  for i = 1, n do        -- all requests first: n connections in flight at once
    local fd = ffi.C.socket(ai.ai_family, SOCK_STREAM, 0)
    if fd < 0 then why = "no socket"; break end
    fds[#fds + 1] = fd
    if ffi.C.connect(fd, ai.ai_addr, ai.ai_addrlen) ~= 0 or ffi.C.write(fd, req, #req) ~= #req then
      why = "cannot send a request"; break
    end
  end
  for _, fd in ipairs(fds) do
    if not why and ffi.C.read(fd, buf, 4096) <= 0 then why = "no answer" end
    ffi.C.close(fd)
  end
  ffi.C.freeaddrinfo(ai)
  return why
end

local warmed = false
function setup(thread)
  if warmed then return end
  warmed = true
  local n = tonumber(os.getenv("BENCH_WARMUP") or "0")
  local why = n > 0 and warm_up(n)
  if why then io.stderr:write("wrk.lua: warm-up: " .. why .. "\n") end
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT rps=%.2f bps=%.0f p50=%.1f p99=%.1f p999=%.1f errors=%d requests=%d\n",
    summary.requests / secs, summary.bytes / secs,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout, summary.requests))
end
