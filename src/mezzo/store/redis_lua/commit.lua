-- ARGV: actual, then the alert thresholds in ascending order.
-- Returns false without a ledger, else {committed, budget, charged, already (0|1),
-- indexes (1-based into the thresholds) of those crossed for the first time...}.
local state = ledger()
if not state then
  return false
end
local hold = redis.call('HMGET', RESERVATION, 'state', 'granted', 'charged')
if hold[1] == 'committed' then
  return { int(state.committed), int(state.budget), int(tonumber(hold[3])), 1 }
end
local granted = 0
if hold[1] == 'open' then
  granted = tonumber(hold[2])
end
local headroom = state.budget - state.committed - (state.reserved - granted)
local charged = math.max(0, math.min(tonumber(ARGV[1]), headroom))
local committed = state.committed + charged
local out = { int(committed), int(state.budget), int(charged), 0 }
local fired = state.fired
local newly = {}
for i = 2, #ARGV do
  if not has_fired(state, ARGV[i]) and committed >= tonumber(ARGV[i]) * state.budget then
    out[#out + 1] = i - 1
    newly[#newly + 1] = ARGV[i]
  end
end
for _, t in ipairs(newly) do
  fired[#fired + 1] = t
end
redis.call('HSET', LEDGER, 'committed', int(committed), 'reserved', int(state.reserved - granted),
  'alerts', table.concat(fired, ' '))
redis.call('HSET', RESERVATION, 'granted', int(granted), 'state', 'committed', 'charged', int(charged))
redis.call('EXPIRE', RESERVATION, SETTLED_TTL_S)
return out
