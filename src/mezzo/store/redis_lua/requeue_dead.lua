-- ARGV: id. Moves a dead job back to the queue with fresh attempts.
local id = ARGV[1]
local raw = redis.call('HGET', DEAD_JOBS, id)
if not raw then
  return 0
end
local dead = cjson.decode(raw)
redis.call('HDEL', DEAD_JOBS, id)
redis.call('ZREM', DEAD, id)
if redis.call('HEXISTS', JOBS, id) == 0 then
  local now = clock()
  local job = { p = dead.p, pr = dead.pr, nb = now, a = 0, m = dead.m, s = 'ready', t = 0, ag = 0 }
  save(id, job)
  schedule(id, job, now)
  count(job.pr, 1)
end
return 1
