-- lock_acquire: take a lock if it is free, and issue it the next fencing token.
-- KEYS[1] owner  KEYS[2] fence
-- ARGV[1] token (random, one per acquisition)  ARGV[2] ttl ms
-- The owner key is set with SET NX PX; only then is the next fence reserved, so each
--   holder's fence is greater than every earlier holder's (and than Redis' clock in µs, so not
--   even a failover that lost writes issues one twice: reserve_fences in prelude.lua). The
--   counter never expires: a fence is never issued twice, also after an owner key expired.
-- Returns {1, fence} when taken, or when this token already holds it (its TTL is set again and
--   the fence is the counter's value: nobody else can have taken one while the token held);
--   {0, pttl} when another token holds it (pttl: its remaining ms, -1 if it has no TTL).
-- Idempotent: yes; a call retried with the same token (its reply was lost) answers the same
--   fence instead of issuing a new one.
local token = ARGV[1]
local ttl = ARGV[2]
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ttl) then
  return {1, reserve_fences(KEYS[2], 1) + 1}
end
if redis.call('GET', KEYS[1]) == token then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, tonumber(redis.call('GET', KEYS[2])) or 0}
end
return {0, redis.call('PTTL', KEYS[1])}
