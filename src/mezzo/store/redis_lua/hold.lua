-- KEYS: 1 ledger, 2 open holds, 3 hold expiry, 4 waiting line, then the log keys of log_lib.
-- ARGV: id, tokens, minimum, priority, ttl seconds, waiter ttl seconds, run ('' for none),
-- expected version ('' for no check), n, then n pairs (type, data JSON) appended when granted.
-- Returns {status, granted, budget, committed, reserved, alerts, last seq, ts}: status 1
-- granted, 0 not, -1 no ledger, -2 version conflict (granted = the run's version).
local OPEN, EXPIRY, WAITERS = KEYS[2], KEYS[3], KEYS[4]
local id, tokens, minimum = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local priority, ttl, waiter_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local run, expected, n = ARGV[7], ARGV[8], tonumber(ARGV[9])
if run ~= '' and expected ~= '' and run_version(KEYS[7], run) ~= tonumber(expected) then
  return { -2, run_version(KEYS[7], run) }
end
local state = ledger()
if not state then
  return { -1 }
end
local now = clock()
for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', '(' .. now)) do
  close_hold(OPEN, EXPIRY, nil, lapsed)
end
state = ledger()

local function answer(granted)
  local out = reply(ledger())
  local appended = { 0, '' }
  if granted > 0 and n > 0 then
    appended = append_events(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], run, expected, n, 10)
  end
  return { granted > 0 and 1 or 0, int(granted), out[1], out[2], out[3], out[4], appended[1], appended[2] }
end

local held = redis.call('HGET', OPEN, id)
if held then
  return answer(tonumber(held))
end
local unspent = state.budget - state.committed
if unspent < minimum or tokens <= 0 then
  redis.call('HDEL', WAITERS, id)
  return answer(0)
end
if tokens > unspent then
  return answer(0)
end
local since, ahead = now, 0
local line = redis.call('HGETALL', WAITERS)
local others = {}
for i = 1, #line, 2 do
  local p, s, t, seen = string.match(line[i + 1], '(%S+) (%S+) (%S+) (%S+)')
  if tonumber(seen) < now - waiter_ttl then
    redis.call('HDEL', WAITERS, line[i])
  elseif line[i] == id then
    since = tonumber(s)
  else
    others[#others + 1] = { tonumber(p), tonumber(s), tonumber(t) }
  end
end
for _, other in ipairs(others) do
  if other[1] > priority or (other[1] == priority and other[2] < since) then
    ahead = ahead + other[3]
  end
end
if unspent - state.reserved - ahead < tokens then
  redis.call('HSET', WAITERS, id, table.concat({ int(priority), string.format('%.6f', since), int(tokens), string.format('%.6f', now) }, ' '))
  return answer(0)
end
redis.call('HDEL', WAITERS, id)
redis.call('HSET', OPEN, id, int(tokens))
redis.call('ZADD', EXPIRY, string.format('%.6f', now + ttl), id)
redis.call('HINCRBY', LEDGER, 'reserved', int(tokens))
return answer(tokens)
