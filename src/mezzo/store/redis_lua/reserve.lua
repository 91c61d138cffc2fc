-- ARGV: minimum, wanted. Returns {1, granted}, {0} when even minimum does not fit,
-- {-1} without a ledger.
local minimum, wanted = tonumber(ARGV[1]), tonumber(ARGV[2])
local hold = redis.call('HMGET', RESERVATION, 'state', 'granted')
if hold[1] == 'open' then
  return { 1, tonumber(hold[2]) }
end
local state = ledger()
if not state then
  return { -1 }
end
local granted = math.min(wanted, state.budget - state.committed - state.reserved)
if granted < minimum or granted <= 0 then
  return { 0 }
end
redis.call('DEL', RESERVATION)
redis.call('HSET', RESERVATION, 'granted', int(granted), 'state', 'open', 'charged', '0')
redis.call('HINCRBY', LEDGER, 'reserved', int(granted))
return { 1, granted }
