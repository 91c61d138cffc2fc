-- ARGV: id, token, delay_s. Gives the job back without spending an attempt.
local id, token, delay = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local job = held(id, token)
if not job then
  return 0
end
local now = clock()
unindex(id)
make_ready(job, now + delay)
job.a = math.max(job.a - 1, 0)
save(id, job)
schedule(id, job, now)
return 1
