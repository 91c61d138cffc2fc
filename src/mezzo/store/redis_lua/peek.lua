-- What a lease would find: {jobs ready, score of the best ('' when none)}, after moving due
-- and lapsed jobs into line as lease does. Workers compare partitions by it (redis_queue.py).
promote(clock())
local best = redis.call('ZRANGE', READY, 0, 0, 'WITHSCORES')
return { redis.call('ZCARD', READY), best[2] or '' }
