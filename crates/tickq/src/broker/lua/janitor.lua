#!lua flags=allow-oom
-- janitor: enforce retention on finished jobs.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] completed  KEYS[2] cancelled  KEYS[3] dead
-- ARGV[1] job key prefix  ARGV[2] keep ms (completed, cancelled)  ARGV[3] dead keep ms
-- ARGV[4] max entries to drop per index per call
-- Completed and cancelled jobs older than keep ms go: index entry and record (no job record
--   has a TTL: a job's notes must not expire before its payload, or it would read as
--   pending; completed ones also go by the cap in ack). Dead jobs have no TTL: the janitor
--   deletes those older than the dead keep time. Finished workflows whose hash expired leave
--   the workflow index (`flow_trim`).
-- Repairs the facts a rolling upgrade from a tickq older than the `running` hash may leave
--   without their index (below).
-- Returns the number of index entries dropped.
-- Idempotent: yes.
local prefix = ARGV[1]
local now = now_ms()
local limit = tonumber(ARGV[4])
local dropped = 0
for _, k in ipairs({KEYS[1], KEYS[2]}) do
  local ids = redis.call('ZRANGE', k, '-inf', now - tonumber(ARGV[2]), 'BYSCORE', 'LIMIT', 0, limit)
  if #ids > 0 then
    zrem_many(k, ids)
    for _, id in ipairs(ids) do
      -- A job retried after it finished is no longer in this state: leave its record alone.
      local state = job_get(prefix, id, {'state'})[1]
      if state == 'completed' or state == 'cancelled' then job_del(prefix, id) end
    end
    dropped = dropped + #ids
  end
end
local dead = redis.call('ZRANGE', KEYS[3], '-inf', now - tonumber(ARGV[3]), 'BYSCORE', 'LIMIT', 0, limit)
if #dead > 0 then
  zrem_many(KEYS[3], dead)
  for _, id in ipairs(dead) do job_del(prefix, id) end
  dropped = dropped + #dead
end
-- Finished workflows whose retention ran out leave the queue's workflow index (prelude.lua).
dropped = dropped + flow_trim(prefix, now, limit)
-- Facts without their index (prelude.lua, "Job records"). No script of this version leaves
-- one, but a tickq older than the `running` hash, working the same queue during a rolling
-- upgrade, does: its recover drops a job it does not see as active from `active`, its janitor
-- and cap drop a completed job from `completed` and leave its acked facts. A sample per call:
-- a running job missing from `active` goes back with its lease run out (recover takes it
-- back), an acked one missing from `completed` is deleted, as its retention would have.
for _, repair in ipairs({{'running', 'active'}, {'acked', 'completed'}}) do
  local ids = redis.call('HRANDFIELD', queue_key(prefix, repair[1]), limit)
  if #ids > 0 then
    local scores = redis.call('ZMSCORE', queue_key(prefix, repair[2]), unpack(ids))
    for i, id in ipairs(ids) do
      if not scores[i] then
        if repair[1] == 'running' then
          redis.call('ZADD', queue_key(prefix, 'active'), 0, id)
        else
          job_del(prefix, id)
        end
      end
    end
  end
end
return dropped
