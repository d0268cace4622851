-- schema(): the whole tracker schema.
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("schema", {})
end

dofile(dir .. "/common.lua")
