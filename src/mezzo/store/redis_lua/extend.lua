-- ARGV: id, token, lease_s. Returns 0 when the lease is no longer held.
local id, token, lease_s = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local job = held(id, token)
if not job then
  return 0
end
job.lu = clock() + lease_s
save(id, job)
redis.call('ZREM', READY, id)
redis.call('ZADD', LEASED, num(job.lu), id)
return 1
