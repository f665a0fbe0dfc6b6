-- lock_fenced_set: write a value guarded by a lock's fence.
-- KEYS[1] fence (the lock's counter)  KEYS[2] data key (a hash: value, fence)
-- ARGV[1] the writer's fence  ARGV[2] value
-- Accepted only when the writer's fence is the latest one issued for the lock (so a holder is
--   refused as soon as anyone newer acquired, even before the newer holder writes anything)
--   and not lower than the fence that wrote the stored value. Fence 0 (never issued) is refused.
-- Returns {1, fence} when written; {0, latest issued fence, fence of the stored value (0 if
--   none)} when the writer's fence is stale (nothing changed).
-- Idempotent: yes; the same write again with the same fence is accepted and leaves the same
--   state.
local fence = tonumber(ARGV[1])
local latest = tonumber(redis.call('GET', KEYS[1])) or 0
local stored = tonumber(redis.call('HGET', KEYS[2], 'fence')) or 0
if not fence or fence < 1 or fence ~= latest or fence < stored then
  return {0, latest, stored}
end
redis.call('HSET', KEYS[2], 'value', ARGV[2], 'fence', ARGV[1])
return {1, fence}
