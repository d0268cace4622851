-- set('issueN', 'title=...', 'priority=N'): edit a random issue.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("set", { str("issue" .. random_issue()),
    str("title=edited " .. random_word() .. " " .. random_word() .. " " .. random_word()),
    str("priority=" .. math.random(1, 5)) })
end

dofile(dir .. "/common.lua")
