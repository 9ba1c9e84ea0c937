-- check.lua: the check endpoint as a user would call it: GET <path>?feature=<f> with the
-- user's own JWT, cycling over the seeded users. Arguments (after wrk's "--"): the tokens
-- file (one JWT a line, user n on line n+1) and the feature.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local reqs = {}
local next_req = 0

function init(args)
   local path = wrk.path .. "?feature=" .. args[2]
   for tok in io.lines(args[1]) do
      reqs[#reqs + 1] = wrk.format("GET", path,
         { ["Authorization"] = "Bearer " .. tok, ["Accept"] = "application/json" })
   end
end

function request()
   next_req = next_req % #reqs + 1
   return reqs[next_req]
end
