-- ARGV: id, token. Returns 0 when the lease is no longer held.
local id, token = ARGV[1], tonumber(ARGV[2])
local job = held(id, token)
if not job then
  return 0
end
unindex(id)
if job.ag == 1 then
  local now = clock()
  make_ready(job, now)
  job.a = 0
  job.ag = 0
  save(id, job)
  schedule(id, job, now)
else
  redis.call('HDEL', JOBS, id)
  count(job.pr, -1)
end
return 1
