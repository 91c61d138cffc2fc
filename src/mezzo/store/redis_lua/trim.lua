-- Drops old events but never one at or after the first seq of a run that has not ended.
-- KEYS: 1 log, 2 head, 3 open runs. ARGV: how many of the newest events to keep at least.
-- Returns {entries removed, first seq kept}.
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = head - tonumber(ARGV[1]) + 1
local oldest_open = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if oldest_open[2] then
  floor = math.min(floor, tonumber(oldest_open[2]))
end
if floor <= 1 then
  return { 0, 1 }
end
local removed = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', floor) .. '-0')
return { removed, floor }
