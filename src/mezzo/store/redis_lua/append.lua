-- The workspace's event log. All keys carry the workspace's hash tag (one Cluster slot).
-- KEYS: 1 log (stream, entry id = "<seq>-0"), 2 head (last seq), 3 versions (hash run -> count),
--       4 the run's index (zset of its seqs), 5 open runs (zset run -> first seq)
-- ARGV: run ('' for none), expected version ('' for no check), n, then n pairs (type, data JSON)
-- Returns {-1, actual version} on a conflict, else {last seq, ts}.
local LOG, HEAD, VERSIONS, RUN_INDEX, OPEN_RUNS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local run, expected, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
if run ~= '' then
  local version = tonumber(redis.call('HGET', VERSIONS, run) or '0')
  if expected ~= '' and version ~= tonumber(expected) then
    return { -1, version }
  end
  redis.call('HINCRBY', VERSIONS, run, n)
end
local t = redis.call('TIME')
local ts = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local head = tonumber(redis.call('GET', HEAD) or '0')
local ended = false
for i = 1, n do
  local seq = string.format('%d', head + i)
  local type_, data = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  if run ~= '' then
    redis.call('XADD', LOG, seq .. '-0', 't', type_, 'r', run, 'ts', ts, 'd', data)
    redis.call('ZADD', RUN_INDEX, seq, seq)
  else
    redis.call('XADD', LOG, seq .. '-0', 't', type_, 'ts', ts, 'd', data)
  end
  if type_ == 'completed' or type_ == 'failed' or type_ == 'cancelled' then
    ended = true
  end
end
redis.call('SET', HEAD, string.format('%d', head + n))
if run ~= '' then
  -- Trimming keeps every event at or after the first seq of a run that has not ended.
  if ended then
    redis.call('ZREM', OPEN_RUNS, run)
  elseif not redis.call('ZSCORE', OPEN_RUNS, run) then
    local first = redis.call('ZRANGE', RUN_INDEX, 0, 0)[1]
    redis.call('ZADD', OPEN_RUNS, first, run)
  end
end
return { head + n, ts }
