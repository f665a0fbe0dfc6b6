#!lua flags=allow-oom
-- queue_pause: pause or resume a queue.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] paused flag  KEYS[2] wake stream
-- ARGV[1] 1 to pause, 0 to resume
-- Paused: the flag exists, and the claim script leases nothing while it does (jobs already
--   leased run to the end). Resume deletes the flag and wakes idle workers, so one
--   claims at once instead of at its next idle timeout; that worker wakes the next one while
--   work is left.
-- Returns 1 when the queue was paused before the call, 0 otherwise.
-- Idempotent: yes; a second resume only wakes idle workers again, which costs empty claims.
local was = redis.call('EXISTS', KEYS[1])
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], '1')
else
  redis.call('DEL', KEYS[1])
  wake(KEYS[2])
end
return was
