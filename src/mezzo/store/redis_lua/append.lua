-- KEYS: the log keys of log_lib, in its order. ARGV: run ('' for none), expected version
-- ('' for no check), n, then n pairs (type, data JSON).
-- Returns {-1, actual version} on a conflict, else {last seq, ts}.
return append_events(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2],
  tonumber(ARGV[3]), 4)
