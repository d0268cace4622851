-- lookup('status', 'chatting').
local dir = os.getenv("BENCH_DIR") or "bench"

make_body = function()
  return call("lookup", { str("status"), str("chatting") })
end

dofile(dir .. "/common.lua")
