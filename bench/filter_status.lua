-- filter('issue', None, {'status': ID}): issues with one of the 8 statuses.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("filter", { str("issue"), "<value><nil/></value>",
    "<value><struct><member><name>status</name>" .. str(tostring(math.random(1, 8))) .. "</member></struct></value>" })
end

dofile(dir .. "/common.lua")
