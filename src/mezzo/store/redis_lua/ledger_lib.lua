-- Shared by the ledger scripts. KEYS: 1 the workspace's ledger (hash: budget, committed,
-- reserved, alerts), 2 one reservation (hash: granted, state, charged). Same hash tag.
-- `alerts` holds the thresholds already fired, space-separated, as the client wrote them.
local LEDGER, RESERVATION = KEYS[1], KEYS[2]
local SETTLED_TTL_S = 7 * 24 * 3600

local function int(x)
  return string.format('%d', x)
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
