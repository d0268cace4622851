-- list('issue', 'title'): the titles of all issues.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("list", { str("issue"), str("title") })
end

dofile(dir .. "/common.lua")
