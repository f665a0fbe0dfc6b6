-- flow_retry: start a failed workflow again from its failed steps.
-- KEYS[1] pending  KEYS[2] waiting  KEYS[3] seq  KEYS[4] wake stream  KEYS[5] the workflow hash
-- KEYS[6] dead  KEYS[7] cancelled  KEYS[8] completed
-- ARGV[1] job key prefix; then 2 per step, parents before children: step id, its parents
--   (step ids, space separated)
-- Every step that ended dead or cancelled starts over (fresh attempts, no cancel request):
--   its end is forgotten, its `wait` is recounted as the parents that have not succeeded
--   (completed or skipped), and it is pending when that is 0, waiting otherwise. Steps that
--   succeeded keep their results; the workflow's cancel mark is cleared. An `only_if_failed`
--   step (a batch's on_failure) whose parents all succeeded ends as skipped instead.
-- A step whose job is no longer dead or cancelled (retried by hand, or gone with its retention)
--   is left as it is.
-- Returns the number of steps started over, or -1 when the workflow is gone.
-- Idempotent: yes; a second call finds no failed step and answers 0.
local prefix = ARGV[1]
local fk = KEYS[5]
local jp = redis.call('HGET', fk, 'jp')
if not jp then return -1 end
local now = now_ms()
local now_s = str(now)
local ends = {}
for i = 2, #ARGV, 2 do
  ends[ARGV[i]] = redis.call('HGET', fk, 'e:' .. ARGV[i])
end
local again = 0
local ready = {}
for i = 2, #ARGV, 2 do
  local step = ARGV[i]
  local e = ends[step]
  if e == 'dead' or e == 'cancelled' then
    local id = jp .. step
    local state, policy = unpack(job_get(prefix, id, {'state', 'policy'}))
    -- A step retried by hand since (or whose job's retention ran out) is left as it is.
    if state == 'dead' or state == 'cancelled' then
      local wait = 0
      for p in string.gmatch(ARGV[i + 1], '%S+') do
        local pe = ends[p]
        if pe ~= 'completed' and pe ~= 'skipped' then wait = wait + 1 end
      end
      redis.call('HDEL', fk, 'e:' .. step)
      redis.call('HINCRBY', fk, e, -1)
      redis.call('HINCRBY', fk, 'left', 1)
      ends[step] = nil
      redis.call('ZREM', KEYS[6], id)
      redis.call('ZREM', KEYS[7], id)
      job_keep(prefix, id)
      job_unset(prefix, id, 'finished', 'cancel', 'error', 'parent_failed', 'owner', 'lease')
      job_set(prefix, id, 'attempt', '0', 'wait', str(wait), 'due', now_s)
      if wait == 0 and policy == 'only_if_failed' then
        -- A batch's on_failure whose parents all succeeded: nothing failed, so it ends as
        -- skipped (its own waiting children are settled by that end).
        job_set(prefix, id, 'state', 'completed', 'finished', now_s, 'skipped', 'no parent failed')
        redis.call('ZADD', KEYS[8], now, id)
        event('completed', id)
        flow_ended(prefix, fk, step, 'skipped', nil, now)
        ends[step] = 'skipped'
      elseif wait == 0 then
        job_set(prefix, id, 'state', 'pending')
        ready[#ready + 1] = id
        event('pending', id)
      else
        job_set(prefix, id, 'state', 'waiting')
        redis.call('ZADD', KEYS[2], now, id)
        event('waiting', id)
      end
      again = again + 1
    end
  end
end
if again > 0 then
  redis.call('HDEL', fk, 'cancel', 'finished')
  redis.call('PERSIST', fk)
  redis.call('ZREM', queue_key(prefix, 'flow-ends'), flow_id_of(jp))
end
if #ready > 0 then
  local seq = redis.call('INCRBY', KEYS[3], #ready) - #ready
  local pairs = {}
  for n, id in ipairs(ready) do
    local prio = job_get(prefix, id, {'priority'})[1]
    pairs[#pairs + 1] = pending_score(tonumber(prio) or 0, seq + n)
    pairs[#pairs + 1] = id
  end
  zadd_many(KEYS[1], pairs)
  wake(KEYS[4])
end
publish(prefix)
return again
