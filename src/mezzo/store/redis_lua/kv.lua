-- KEYS: 1 values (hash), 2 index (zset, all scores 0, for ordered prefix scans)
-- ARGV: op ('put' | 'put_if_absent' | 'delete'), key, value
local VALUES, INDEX = KEYS[1], KEYS[2]
local op, key = ARGV[1], ARGV[2]
if op == 'put' then
  redis.call('HSET', VALUES, key, ARGV[3])
  redis.call('ZADD', INDEX, 0, key)
  return 1
elseif op == 'put_if_absent' then
  if redis.call('HSETNX', VALUES, key, ARGV[3]) == 1 then
    redis.call('ZADD', INDEX, 0, key)
    return 1
  end
  return 0
elseif op == 'delete' then
  if redis.call('HDEL', VALUES, key) == 1 then
    redis.call('ZREM', INDEX, key)
    return 1
  end
  return 0
end
return redis.error_reply('unknown kv op ' .. op)
