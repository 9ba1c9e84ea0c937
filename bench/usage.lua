-- usage.lua: a user's usage as their page reads it: GET <path> with the user's own JWT, cycling
-- over the seeded users. Argument (after wrk's "--"): the tokens file (one JWT a line).
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local reqs = {}
local next_req = 0

function init(args)
   for tok in io.lines(args[1]) do
      reqs[#reqs + 1] = wrk.format("GET", wrk.path,
         { ["Authorization"] = "Bearer " .. tok, ["Accept"] = "application/json" })
   end
end

function request()
   next_req = next_req % #reqs + 1
   return reqs[next_req]
end
