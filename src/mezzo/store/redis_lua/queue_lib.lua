-- Shared by the queue scripts. Every queue key carries the queue's hash tag, so one queue
-- lives in one Cluster slot and each script below is atomic.
-- KEYS: 1 jobs (hash id -> job JSON), 2 ready (zset, score: priority then not_before),
--       3 delayed (zset, score: not_before), 4 leased (zset, score: lease deadline),
--       5 depth (hash priority -> count), 6 dead (zset, score: failed_at),
--       7 dead jobs (hash id -> JSON), 8 token counter (fencing tokens, never reused),
--       9 wake-up channel (Pub/Sub, not a key; named with the queue's tag to keep one slot)
-- Job JSON: p payload, pr priority, nb not_before, a attempts, m max_attempts,
--           s state (ready | leased), w worker, lu lease_until, t token, ag again, e last_error
local JOBS, READY, DELAYED, LEASED = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local DEPTH, DEAD, DEAD_JOBS, TOKENS, WAKE = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

local function num(x)
  return string.format('%.17g', x)
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function load(id)
  local raw = redis.call('HGET', JOBS, id)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function save(id, job)
  redis.call('HSET', JOBS, id, cjson.encode(job))
end

local function ready_score(job)
  return -job.pr * 1e13 + job.nb * 1000
end

local function unindex(id)
  redis.call('ZREM', READY, id)
  redis.call('ZREM', DELAYED, id)
  redis.call('ZREM', LEASED, id)
end

local function schedule(id, job, now)
  if job.nb <= now then
    redis.call('ZADD', READY, num(ready_score(job)), id)
    redis.call('PUBLISH', WAKE, id)
  else
    redis.call('ZADD', DELAYED, num(job.nb), id)
  end
end

local function count(priority, delta)
  local field = string.format('%d', priority)
  if redis.call('HINCRBY', DEPTH, field, delta) <= 0 then
    redis.call('HDEL', DEPTH, field)
  end
end

local function held(id, token)
  local job = load(id)
  if job and job.s == 'leased' and job.t == token then
    return job
  end
  return nil
end

local function make_ready(job, not_before)
  job.s = 'ready'
  job.w = nil
  job.lu = nil
  job.nb = not_before
end

local function bury(id, job, err, now)
  redis.call('HSET', DEAD_JOBS, id, cjson.encode({
    p = job.p, a = job.a, m = job.m, pr = job.pr, e = err, f = now,
  }))
  redis.call('ZADD', DEAD, num(now), id)
  redis.call('HDEL', JOBS, id)
  unindex(id)
  count(job.pr, -1)
end

-- Moves due delayed jobs into line, and lapsed leases back into it (or to the dead letters
-- past max_attempts); the holder of a lapsed lease keeps its token until someone leases the job.
local function promote(now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', num(now), 'LIMIT', 0, 1000)) do
    local job = load(id)
    redis.call('ZREM', DELAYED, id)
    if job then
      redis.call('ZADD', READY, num(ready_score(job)), id)
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASED, '-inf', '(' .. num(now), 'LIMIT', 0, 1000)) do
    local job = load(id)
    redis.call('ZREM', LEASED, id)
    if job and job.a >= job.m then
      bury(id, job, 'lease lapsed: the worker died or hung', now)
    elseif job then
      redis.call('ZADD', READY, num(ready_score(job)), id)
    end
  end
end
