-- ARGV: id, payload, priority, delay_s, max_attempts
local id, payload = ARGV[1], ARGV[2]
local priority, delay, max_attempts = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = clock()
local when = now + delay
local job = load(id)
if not job then
  job = { p = payload, pr = priority, nb = when, a = 0, m = max_attempts, s = 'ready', t = 0, ag = 0 }
  save(id, job)
  schedule(id, job, now)
  count(priority, 1)
  return 1
end
local old_priority = job.pr
job.p = payload
job.pr = math.max(job.pr, priority)
if job.s == 'leased' then
  -- Run once more after the holder acks. A lapsed lease may already wait in READY.
  job.ag = 1
  if redis.call('ZSCORE', READY, id) then
    redis.call('ZADD', READY, num(ready_score(job)), id)
  end
else
  job.nb = math.min(job.nb, when)
  unindex(id)
  schedule(id, job, now)
end
save(id, job)
if job.pr ~= old_priority then
  count(old_priority, -1)
  count(job.pr, 1)
end
return 0
