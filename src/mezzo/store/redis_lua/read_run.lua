-- One page of a run's events after a seq, through the run's index.
-- KEYS: 1 log, 2 the run's index. ARGV: after_seq, page size.
-- Returns {seqs looked at, last seq looked at, entries as XRANGE gives them}.
local seqs = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
local entries = {}
for _, seq in ipairs(seqs) do
  local found = redis.call('XRANGE', KEYS[1], seq .. '-0', seq .. '-0')
  if found[1] then
    entries[#entries + 1] = found[1]
  end
end
return { #seqs, seqs[#seqs] or ARGV[1], entries }
