-- KEYS: 1 ledger, 2 open holds, 3 hold expiry, 4 the settled hold, 5 its mezzo < 0.2 hash,
-- then the log keys of log_lib.
-- ARGV: id, actual, k, k alert thresholds in ascending order, run ('' for none), expected
-- version ('' for no check), n, then n pairs (type, data JSON) appended when the run is still
-- at that version.
-- Returns false without a ledger, else {committed, budget, charged, already (0|1), last seq
-- (0: no events, -1: a version conflict, nothing appended), ts, indexes (1-based into the
-- thresholds) of those crossed for the first time...}.
local OPEN, EXPIRY, SETTLED, LEGACY = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, actual, k = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local run, expected, n = ARGV[4 + k], ARGV[5 + k], tonumber(ARGV[6 + k])
local state = ledger()
if not state then
  return false
end
local out
local charged_before = redis.call('GET', SETTLED)
if charged_before then
  out = { int(state.committed), int(state.budget), charged_before, 1 }
else
  local granted = close_hold(OPEN, EXPIRY, LEGACY, id)
  state.reserved = state.reserved - granted
  local headroom = state.budget - state.committed - state.reserved
  local charged = math.max(0, math.min(actual, headroom))
  local committed = state.committed + charged
  out = { int(committed), int(state.budget), int(charged), 0 }
  local newly = {}
  for i = 4, 3 + k do
    if not has_fired(state, ARGV[i]) and committed >= tonumber(ARGV[i]) * state.budget then
      newly[#newly + 1] = i - 3
      state.fired[#state.fired + 1] = ARGV[i]
    end
  end
  redis.call('HSET', LEDGER, 'committed', int(committed), 'alerts', table.concat(state.fired, ' '))
  redis.call('SET', SETTLED, int(charged), 'EX', SETTLED_TTL_S)
  out.crossed = newly
end
local appended = { 0, '' }
if n > 0 then
  appended = append_events(KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], run, expected, n, 7 + k)
end
local result = { out[1], out[2], out[3], out[4], appended[1], appended[2] }
for _, index in ipairs(out.crossed or {}) do
  result[#result + 1] = index
end
return result
