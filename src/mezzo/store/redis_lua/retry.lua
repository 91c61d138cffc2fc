-- ARGV: id, token, delay_s, error. Returns -1 lease lost, 0 dead-lettered, 1 scheduled again.
local id, token, delay, err = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local job = held(id, token)
if not job then
  return -1
end
local now = clock()
if job.a >= job.m then
  bury(id, job, err, now)
  return 0
end
unindex(id)
make_ready(job, now + delay)
job.e = err
save(id, job)
schedule(id, job, now)
return 1
