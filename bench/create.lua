-- create('issue', 'title=...', 'priority=N', 'nosy=1,3'): a new issue.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("create", { str("issue"),
    str("title=bench " .. random_word() .. " " .. random_word() .. " " .. random_word()),
    str("priority=" .. math.random(1, 5)), str("nosy=1,3") })
end

dofile(dir .. "/common.lua")
