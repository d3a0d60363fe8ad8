-- wrk script for bench/read.py: GET /fhir/{type}/{id} for a random known id.
-- IDS_FILE names a file with one "Type/id" per line; SEED seeds each thread differently.
-- done() prints one JSON line that read.py parses (latencies in microseconds).

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
end

local requests = {}

function init(args)
  for line in io.lines(os.getenv("IDS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", "/fhir/" .. line, { Accept = "application/fhir+json" })
  end
  math.randomseed(tonumber(os.getenv("SEED") or "1") * 1000 + (thread_number or 0))
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, '
      .. '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
