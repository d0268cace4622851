-- Shared wrk glue for the XML-RPC workloads: every request is a POST of an
-- XML-RPC call with admin Basic auth; responses containing <fault> are counted.
-- A workload script sets the global `make_body` (returns one request body) and
-- then loads this file. Environment: BENCH_N (issues in the tracker),
-- BENCH_AUTH (base64 of user:password), BENCH_PATH (URL path, default /xmlrpc).

local N = tonumber(os.getenv("BENCH_N") or "1000")
local AUTH = os.getenv("BENCH_AUTH") or "YWRtaW46YWRtaW4="
local PATH = os.getenv("BENCH_PATH") or "/xmlrpc"

WORDS = { "crash", "login", "page", "error", "slow", "search", "mail", "report",
  "button", "export", "import", "timeout", "unicode", "layout", "printer", "cache",
  "upgrade", "config", "backup", "restore", "session", "token", "index", "query",
  "filter", "sort", "upload", "download", "window", "menu", "theme", "locale" }

-- A random existing issue id (1..N), as a string.
function random_issue()
  return tostring(math.random(1, N))
end

-- A random word of WORDS.
function random_word()
  return WORDS[math.random(1, #WORDS)]
end

-- <value><string>s</string></value> (callers pass XML-safe text only).
function str(s)
  return "<value><string>" .. s .. "</string></value>"
end

-- A whole <methodCall> with string parameters.
function call(method, params)
  local p = {}
  for i, v in ipairs(params) do
    p[i] = "<param>" .. v .. "</param>"
  end
  return "<?xml version='1.0'?>\n<methodCall>\n<methodName>" .. method ..
    "</methodName>\n<params>\n" .. table.concat(p, "\n") .. "\n</params>\n</methodCall>\n"
end

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  faults = 0
  answers = 0
end

local headers = {
  ["Content-Type"] = "text/xml",
  ["Authorization"] = "Basic " .. AUTH,
}

function request()
  return wrk.format("POST", PATH, headers, make_body())
end

function response(status, hdrs, body)
  answers = answers + 1
  if body and string.find(body, "<fault>", 1, true) then
    faults = faults + 1
  end
end

-- One machine-readable line for bench/run (latencies in microseconds).
function done(summary, latency, requests)
  local f, a = 0, 0
  for _, t in ipairs(threads) do
    f = f + (t:get("faults") or 0)
    a = a + (t:get("answers") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d faults=%d answers=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    f, a, e.connect, e.read, e.write, e.status, e.timeout))
end
