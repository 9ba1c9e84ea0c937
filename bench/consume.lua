-- consume.lua: the consume endpoint as the app's back end calls it: POST <path> with a
-- service key and {"user_id", "quota", "amount": 1}, cycling over the seeded users (bench.sh
-- uses the free ones, whose counters exist and whose limit no run reaches: every call is
-- checked and granted). Arguments (after wrk's "--"): the service key, the number of users,
-- the quota and the users' name prefix (bench_free_).
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local reqs = {}
local next_req = 0

function init(args)
   local headers = { ["Authorization"] = "Bearer " .. args[1],
                     ["Content-Type"] = "application/json" }
   for n = 0, tonumber(args[2]) - 1 do
      local body = string.format('{"user_id":"%s%d","quota":"%s","amount":1}', args[4], n, args[3])
      reqs[#reqs + 1] = wrk.format("POST", wrk.path, headers, body)
   end
end

function request()
   next_req = next_req % #reqs + 1
   return reqs[next_req]
end
