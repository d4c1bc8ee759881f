-- Cycles through a corpus of complete, pre-signed HTTP requests written by ingest_bench.py.
--
--   wrk -t1 -c64 -d10s -s benchmarks/wrk/corpus.lua http://127.0.0.1:PORT -- FILE [STOP_AFTER]
--
-- FILE holds records "<length>\n<request bytes>". Every connection of the thread takes the
-- next record, so each request carries a distinct order id until the corpus wraps around.
-- With STOP_AFTER > 0 the thread stops after that many responses (the memory phase).
-- done() prints one JSON line prefixed with WRK_JSON for the benchmark to parse.

local requests = {}
local count = 0
local index = 0
local stop_after = 0
local responses = 0

local function load(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local pos, n = 1, 0
  while pos <= #data do
    local newline = string.find(data, "\n", pos, true)
    local length = tonumber(string.sub(data, pos, newline - 1))
    n = n + 1
    requests[n] = string.sub(data, newline + 1, newline + length)
    pos = newline + length + 1
  end
  return n
end

function init(args)
  count = load(args[1])
  stop_after = tonumber(args[2] or "0")
end

function request()
  index = index + 1
  if index > count then
    index = 1
  end
  return requests[index]
end

function response(status, headers, body)
  if stop_after > 0 then
    responses = responses + 1
    if responses >= stop_after then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
