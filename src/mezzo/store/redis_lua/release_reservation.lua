-- Returns the open hold to the ledger; anything else changes nothing.
local hold = redis.call('HMGET', RESERVATION, 'state', 'granted')
if hold[1] ~= 'open' then
  return 0
end
redis.call('HSET', RESERVATION, 'state', 'released')
redis.call('EXPIRE', RESERVATION, SETTLED_TTL_S)
redis.call('HINCRBY', LEDGER, 'reserved', int(-tonumber(hold[2])))
return 1
