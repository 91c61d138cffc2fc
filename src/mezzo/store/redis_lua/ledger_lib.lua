-- Shared by the ledger scripts. KEYS[1] is the workspace's ledger (hash: budget, committed,
-- reserved, alerts); the hold scripts add, with the same hash tag, the open holds (hash id ->
-- tokens), their expiry (zset id -> epoch seconds), the line of waiting holds (hash id ->
-- "priority since tokens seen") and one settled hold (string: tokens charged, kept a week).
-- `alerts` holds the thresholds already fired, space-separated, as the client wrote them.
local LEDGER = KEYS[1]
local SETTLED_TTL_S = 7 * 24 * 3600

local function int(x)
  return string.format('%d', x)
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function ledger()
  local row = redis.call('HMGET', LEDGER, 'budget', 'committed', 'reserved', 'alerts')
  if not row[1] then
    return nil
  end
  local fired = {}
  for threshold in string.gmatch(row[4] or '', '%S+') do
    fired[#fired + 1] = threshold
  end
  return { budget = tonumber(row[1]), committed = tonumber(row[2]), reserved = tonumber(row[3]), fired = fired }
end

local function has_fired(state, threshold)
  for _, t in ipairs(state.fired) do
    if tonumber(t) == tonumber(threshold) then
      return true
    end
  end
  return false
end

local function reply(state)
  return { int(state.budget), int(state.committed), int(state.reserved), table.concat(state.fired, ' ') }
end

-- Takes an open hold out of the ledger; returns its tokens (0 when it was not open). A hold
-- still open in the layout of mezzo < 0.2 (one hash per reservation) counts too.
local function close_hold(OPEN, EXPIRY, LEGACY, id)
  local tokens = redis.call('HGET', OPEN, id)
  if tokens then
    redis.call('HDEL', OPEN, id)
    redis.call('ZREM', EXPIRY, id)
  elseif LEGACY and redis.call('HGET', LEGACY, 'state') == 'open' then
    tokens = redis.call('HGET', LEGACY, 'granted')
    redis.call('DEL', LEGACY)
  end
  if not tokens then
    return 0
  end
  redis.call('HINCRBY', LEDGER, 'reserved', int(-tonumber(tokens)))
  return tonumber(tokens)
end
