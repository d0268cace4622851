-- filter('issue', None, {'title': WORD}): case-insensitive substring search.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("filter", { str("issue"), "<value><nil/></value>",
    "<value><struct><member><name>title</name>" .. str(random_word()) .. "</member></struct></value>" })
end

dofile(dir .. "/common.lua")
