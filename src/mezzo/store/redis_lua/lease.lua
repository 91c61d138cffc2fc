-- ARGV: worker, n, lease_s. Returns the leased jobs as JSON strings, best first.
local worker, n, lease_s = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = clock()
promote(now)
local out = {}
if n <= 0 then
  return out
end
for _, id in ipairs(redis.call('ZRANGE', READY, 0, n - 1)) do
  local job = load(id)
  redis.call('ZREM', READY, id)
  if job then
    job.s = 'leased'
    job.w = worker
    job.lu = now + lease_s
    job.t = redis.call('INCR', TOKENS)
    job.a = job.a + 1
    job.ag = 0
    save(id, job)
    redis.call('ZADD', LEASED, num(job.lu), id)
    out[#out + 1] = cjson.encode({ id = id, p = job.p, pr = job.pr, a = job.a, m = job.m, t = job.t, e = job.e })
  end
end
return out
