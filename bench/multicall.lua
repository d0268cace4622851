-- system.multicall of 10 display('issueN', 'title', 'status', 'priority') calls.
local dir = os.getenv("BENCH_DIR") or "bench"

local function sub(id)
  return "<value><struct><member><name>methodName</name>" .. str("display") ..
    "</member><member><name>params</name><value><array><data>" ..
    str("issue" .. id) .. str("title") .. str("status") .. str("priority") ..
    "</data></array></value></member></struct></value>"
end

make_body = function()
  local calls = {}
  for i = 1, 10 do
    calls[i] = sub(random_issue())
  end
  return call("system.multicall", { "<value><array><data>" .. table.concat(calls) .. "</data></array></value>" })
end

dofile(dir .. "/common.lua")
