-- display('issueN'): every property of a random issue.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("display", { str("issue" .. random_issue()) })
end

dofile(dir .. "/common.lua")
