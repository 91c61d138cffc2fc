-- ARGV: seconds from now. Nobody may acquire on the key before then.
local now = clock()
local until_ = now + tonumber(ARGV[1])
redis.call('HSET', STATE, 'blocked_until', num(math.max(field('blocked_until'), until_)))
expire_after(now)
return 1
