-- ARGV: requests, tokens, then per_minute and burst of the request limit and of the token
-- limit ('' where there is none). Returns the seconds to wait as a string; "0" when taken.
-- A negative cost gives capacity back (always taken).
local now = clock()
local blocked = field('blocked_until')
if blocked > now then
  return num(blocked - now)
end
local dimensions = {
  { 'tat_r', tonumber(ARGV[1]), ARGV[3], ARGV[4] },
  { 'tat_t', tonumber(ARGV[2]), ARGV[5], ARGV[6] },
}
local longest = 0
local refused = false
local updates = {}
for _, d in ipairs(dimensions) do
  local name, cost, per_minute, burst = d[1], d[2], d[3], d[4]
  if per_minute ~= '' and cost < 0 then
    -- A refund: give back capacity taken earlier but not used (never below now).
    local interval = 60.0 / tonumber(per_minute)
    updates[#updates + 1] = name
    updates[#updates + 1] = num(math.max(now, field(name) + cost * interval))
  elseif per_minute ~= '' and cost > 0 then
    local interval = 60.0 / tonumber(per_minute)
    local tolerance = math.max(tonumber(burst), cost) * interval
    local new_tat = math.max(field(name), now) + cost * interval
    local allow_at = new_tat - tolerance
    if allow_at > now then
      refused = true
      longest = math.max(longest, allow_at - now)
    else
      updates[#updates + 1] = name
      updates[#updates + 1] = num(new_tat)
    end
  end
end
if refused then
  return num(longest)
end
if #updates > 0 then
  redis.call('HSET', STATE, unpack(updates))
  expire_after(now)
end
return '0'
