-- wrk script: POST /api/jobs with a test job; counts non-202 answers.
-- wrk -t2 -c32 -d30s --latency -s rust/fluo-bff/bench/submit.lua http://127.0.0.1:PORT/api/jobs
-- Environment (scripts/bench-bff sets them): FLUO_BENCH_TOKEN, a bearer token to present;
-- FLUO_BENCH_BODY, another body; FLUO_BENCH_LIMIT, stop each thread after that many answers.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("FLUO_BENCH_BODY") or '{"type": "test", "data": {"validation": true}}'
local token = os.getenv("FLUO_BENCH_TOKEN")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
local limit = tonumber(os.getenv("FLUO_BENCH_LIMIT") or "")

local answers = 0
local rejected = 0
function response(status, headers, body)
  answers = answers + 1
  if status ~= 202 then rejected = rejected + 1 end
  if limit and answers >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  io.write(string.format("non-202 answers (this thread's count, see wrk docs): %d\n", rejected))
  io.write(string.format("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
