#!lua flags=allow-oom
-- lock_release: give a lock up (compare-and-delete).
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] owner
-- ARGV[1] token
-- Deletes the owner key only while it holds this token: a holder that lost the lock must not
--   free it under the next holder's feet. The fence counter stays.
-- Returns 1 when released; 0 when this token did not hold it (nothing changed).
-- Idempotent: yes; a second call answers 0 and changes nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
