-- webhook.lua: Stripe delivering invoice.paid events, each with its own event id. wrk's Lua
-- cannot compute HMAC, so bench/seed.py signs the events beforehand: the body template (with
-- @@I@@ for the event's number and @@U@@ for the user's, I mod users) and one Stripe-Signature
-- line per event. Arguments (after wrk's "--"): the template file, the signature file and the
-- number of users. Past the last signature it starts over (Stripe redelivering: duplicates).
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local parts = {} -- text, "I" or "U", text, ...
local sigs = {}
local users = 1
local n = 0

local function split(tpl)
   local pos = 1
   while true do
      local s, e, name = string.find(tpl, "@@([IU])@@", pos)
      if not s then break end
      parts[#parts + 1] = string.sub(tpl, pos, s - 1)
      parts[#parts + 1] = name
      pos = e + 1
   end
   parts[#parts + 1] = string.sub(tpl, pos)
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   split(f:read("*a"))
   f:close()
   for line in io.lines(args[2]) do sigs[#sigs + 1] = line end
   users = tonumber(args[3])
end

function request()
   n = n % #sigs + 1
   local vals = { I = tostring(n), U = tostring(n % users) }
   local body = {}
   for k, p in ipairs(parts) do
      body[k] = (k % 2 == 0) and vals[p] or p
   end
   return wrk.format("POST", wrk.path, {
      ["Content-Type"] = "application/json; charset=utf-8",
      ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
      ["Stripe-Signature"] = sigs[n],
   }, table.concat(body))
end
