-- ARGV: budget. Creates the ledger once; a second call changes nothing.
if redis.call('EXISTS', LEDGER) == 1 then
  return 0
end
redis.call('HSET', LEDGER, 'budget', ARGV[1], 'committed', '0', 'reserved', '0', 'alerts', '')
return 1
