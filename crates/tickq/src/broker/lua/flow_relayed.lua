#!lua flags=allow-oom
-- flow_relayed: remove outbox entries that the relay applied in their targets (flow_settle).
-- Runs when Redis is full (flags=allow-oom): it only frees memory.
-- KEYS[1] the queue's workflow outbox (flow-outbox)
-- ARGV 2 per entry: field, the value the relay read.
-- An entry whose value changed since it was read (a newer end or restart of the same step
--   for the same target, not relayed yet) stays.
-- Returns the number removed.
-- Idempotent: yes; a removed entry is not there to remove again.
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
