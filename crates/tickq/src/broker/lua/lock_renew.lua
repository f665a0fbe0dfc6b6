#!lua flags=allow-oom
-- lock_renew: extend a held lock's TTL (compare-and-pexpire).
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] owner
-- ARGV[1] token  ARGV[2] ttl ms
-- The TTL is set only while the owner key holds this token: a holder whose key expired, or was
--   taken over, is told so and must stop; a late renewal never revives a lock.
-- Returns 1 when extended; 0 when the lock is not held by this token (lost).
-- Idempotent: yes; renewing twice only moves the expiry again.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
