-- wrk script for bench/read.py: GET /fhir/{type}/{id} for a random known id.
-- IDS_FILE names a file with one "Type/id" per line; SEED seeds each thread differently.
-- done() prints one JSON line that read.py parses (latencies in microseconds, non-200 answers by status).

local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

local requests = {}
statuses = {}

function init(args)
  for line in io.lines(os.getenv("IDS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", "/fhir/" .. line, { Accept = "application/fhir+json" })
  end
  math.randomseed(tonumber(os.getenv("SEED") or "1") * 1000 + (thread_number or 0))
end

function request()
  return requests[math.random(#requests)]
end

function response(status, headers, body)
  if status ~= 200 then
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      parts[#parts + 1] = string.format('["%s", %d]', status, n)
    end
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, '
      .. '"non_2xx": %d, "socket_errors": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, '
      .. '"statuses": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout,
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end
