-- wrk script of benchmarks/bench_api_wrk.py: POST varied bodies, count statuses, dump JSON.
--
-- wrk -s bench_api_wrk.lua URL -- BODIES_FILE RUN_TOKEN [HEADER: VALUE ...]
--
-- BODIES_FILE holds one JSON body per line. In each body, __BENCH_ID__ becomes a fresh id
-- (run token, thread, counter: no two requests share a declaration id) and __BENCH_AT__ the
-- current UTC time, so the declarations are dated now, as an inspector's would be.
-- done() prints one line "WRK_JSON {...}" with the summary, the requests sent (those in flight
-- at the deadline are sent, never answered to wrk), 1000 latency quantiles (so two
-- runs can be pooled), the status counts of every thread and wrk's socket errors.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("thread_no", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local bodies = {}
counter = 0  -- requests sent by this thread (global: done() reads it)
local token = "run"
statuses = {}

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then
         table.insert(bodies, line)
      end
   end
   token = args[2]
   for i = 3, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      wrk.headers[name] = value
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local body = bodies[(counter % #bodies) + 1]
   local id = token .. "-" .. thread_no .. "-" .. counter
   -- plain-text replacement (no magic characters in the marks or the values)
   body = body:gsub("__BENCH_ID__", id, 1)
   body = body:gsub("__BENCH_AT__", os.date("!%Y-%m-%dT%H:%M:%S+00:00"), 1)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
   local merged = {}
   -- wrk calls request() once on its first thread's script before the run, to check the
   -- request (wrk.c, script_verify_request): that call sends nothing.
   local sent = -1
   for _, thread in ipairs(threads) do
      sent = sent + thread:get("counter")
      local counts = thread:get("statuses")
      for k, v in pairs(counts) do
         merged[k] = (merged[k] or 0) + v
      end
   end
   local parts = {}
   for k, v in pairs(merged) do
      table.insert(parts, string.format('"%s":%d', k, v))
   end
   local q = {}
   for i = 1, 999 do
      table.insert(q, string.format("%d", latency:percentile(i / 10)))
   end
   table.insert(q, string.format("%d", latency.max))  -- wrk's percentile(100) answers 0
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"sent":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"statuses":{%s},"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f},' ..
      '"quantiles_us":[%s]}\n',
      summary.requests, sent, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(parts, ","), latency.min, latency.max, latency.mean, latency.stdev,
      table.concat(q, ",")))
end
