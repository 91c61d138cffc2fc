-- Shared by the scripts that append to a workspace's event log. Its keys carry the workspace's
-- hash tag (one Cluster slot): the log (stream, entry id = "<seq>-0"), the head (last seq),
-- the run versions (hash run -> count), the run's index (zset of its seqs) and the open runs
-- (zset run -> first seq).

local function run_version(VERSIONS, run)
  return tonumber(redis.call('HGET', VERSIONS, run) or '0')
end

-- Appends n events given as (type, data JSON) pairs in ARGV from `at`. Returns {-1, version}
-- on a version conflict (nothing written), else {last seq, ts}.
local function append_events(LOG, HEAD, VERSIONS, RUN_INDEX, OPEN_RUNS, run, expected, n, at)
  if run ~= '' then
    local version = run_version(VERSIONS, run)
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
    local type_, data = ARGV[at + 2 * i - 2], ARGV[at + 2 * i - 1]
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
end
