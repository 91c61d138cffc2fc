-- KEYS: 1 ledger, 2 open holds, 3 hold expiry, 4 the hold's mezzo < 0.2 hash, 5 waiting line.
-- ARGV: id. Gives an open hold back uncharged, or takes a waiting hold out of the line;
-- anything else changes nothing. Returns the tokens given back.
redis.call('HDEL', KEYS[5], ARGV[1])
return close_hold(KEYS[2], KEYS[3], KEYS[4], ARGV[1])
