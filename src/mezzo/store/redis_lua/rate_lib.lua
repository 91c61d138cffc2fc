-- The rate limiter's state for one key, mirroring mezzo.store.gcra and
-- mezzo.governor.limits.gcra. KEYS: 1 the key's state (hash: tat_r, tat_t, blocked_until).
-- Times are on the Redis server's clock, so every node agrees on them.
local STATE = KEYS[1]

local function num(x)
  return string.format('%.17g', x)
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function field(name)
  return tonumber(redis.call('HGET', STATE, name) or '0')
end

-- The state may go once every time in it is past: a time in the past acts as 0.
local function expire_after(now)
  local last = math.max(field('tat_r'), field('tat_t'), field('blocked_until'))
  redis.call('PEXPIRE', STATE, math.max(1000, math.ceil((last - now) * 1000) + 1000))
end
