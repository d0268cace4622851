-- display('issueN', 'title', 'status', 'priority').
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("display", { str("issue" .. random_issue()), str("title"), str("status"), str("priority") })
end

dofile(dir .. "/common.lua")
