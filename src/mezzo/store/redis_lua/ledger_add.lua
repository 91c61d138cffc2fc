-- ARGV: tokens. Returns false without a ledger, else the new state.
local state = ledger()
if not state then
  return false
end
state.budget = redis.call('HINCRBY', LEDGER, 'budget', ARGV[1])
-- Thresholds now below the used share may fire again later.
local kept = {}
for _, t in ipairs(state.fired) do
  if state.committed >= tonumber(t) * state.budget then
    kept[#kept + 1] = t
  end
end
state.fired = kept
redis.call('HSET', LEDGER, 'alerts', table.concat(kept, ' '))
return reply(state)
