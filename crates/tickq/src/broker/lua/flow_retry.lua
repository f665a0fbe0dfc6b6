-- flow_retry: start a failed workflow again from its failed steps, in one queue: the whole
--   workflow when all its steps are there, else this queue's hash (home or part); the caller
--   calls it for every queue of the workflow (docs/workflows.md, "Steps in other queues").
-- KEYS[1] pending  KEYS[2] waiting  KEYS[3] wake stream  KEYS[4] the workflow hash
-- KEYS[5] dead  KEYS[6] cancelled  KEYS[7] completed
-- ARGV[1] job key prefix; then 4 per step of the whole workflow, parents before children:
--   step id, its parents (step ids, space separated), '1' when it is in this queue, and for a
--   failed step being started over (in any queue) the version of the end being retried
--   (prelude.lua, "Workflows"), '' otherwise.
-- Every step of this queue that ended dead or cancelled starts over (fresh attempts, no cancel
--   request, a new round): its end is forgotten, its `wait` is recounted as the parents that
--   have not succeeded (completed or skipped), and it is pending when that is 0, waiting
--   otherwise; the other queues are told (an `open` outbox entry). A parent in another queue
--   being started over counts as not ended unless a newer end of it arrived already; one
--   whose newer end is a failure leaves the step as it ended. Steps that succeeded keep their
--   results; the workflow's cancel mark is cleared. An `only_if_failed` step (a batch's
--   on_failure) whose parents all succeeded ends as skipped instead.
-- A step whose job is no longer dead or cancelled (retried by hand, or gone with its retention)
--   is left as it is.
-- Returns the number of steps started over, or -1 when the workflow is gone.
-- Idempotent: yes; a second call finds no failed step and answers 0.
local prefix = ARGV[1]
local fk = KEYS[4]
local jp = redis.call('HGET', fk, 'jp')
if not jp then return -1 end
local now = now_ms()
local now_s = str(now)
local ends = {}
local newer = {}
local planned = false
for i = 2, #ARGV, 4 do
  local s = ARGV[i]
  local e = redis.call('HGET', fk, 'e:' .. s)
  if ARGV[i + 3] ~= '' then planned = true end
  if ARGV[i + 2] ~= '1' and ARGV[i + 3] ~= '' then
    -- Another queue's step that is being started over: not ended, unless its new end came.
    if (tonumber(redis.call('HGET', fk, 'v:' .. s)) or -1) > tonumber(ARGV[i + 3]) then
      newer[s] = true
    else
      e = nil
    end
  end
  ends[s] = e or nil
end
local again = 0
local ready = {}
for i = 2, #ARGV, 4 do
  local step = ARGV[i]
  local e = ends[step]
  local stuck = false
  for p in string.gmatch(ARGV[i + 1], '%S+') do
    if newer[p] and ends[p] ~= 'completed' and ends[p] ~= 'skipped' then stuck = true end
  end
  if ARGV[i + 2] == '1' and not stuck and (e == 'dead' or e == 'cancelled') then
    local id = jp .. step
    local state, policy = unpack(job_get(prefix, id, {'state', 'policy'}))
    -- A step retried by hand since (or whose job's retention ran out) is left as it is.
    if state == 'dead' or state == 'cancelled' then
      local round = redis.call('HINCRBY', fk, 'g:' .. step, 1)
      local others = redis.call('HGET', fk, 'o:' .. step)
      if others then
        for q in string.gmatch(others, '%S+') do
          flow_tell(prefix, flow_id_of(jp), step, q, 2 * round, 'open', '')
        end
      end
      local wait = 0
      for p in string.gmatch(ARGV[i + 1], '%S+') do
        local pe = ends[p]
        if pe ~= 'completed' and pe ~= 'skipped' then wait = wait + 1 end
      end
      redis.call('HDEL', fk, 'e:' .. step)
      redis.call('HINCRBY', fk, e, -1)
      redis.call('HINCRBY', fk, 'left', 1)
      ends[step] = nil
      redis.call('ZREM', KEYS[5], id)
      redis.call('ZREM', KEYS[6], id)
      job_unset(prefix, id, 'finished', 'cancel', 'error', 'parent_failed', 'owner', 'lease')
      job_set(prefix, id, 'attempt', '0', 'wait', str(wait), 'due', now_s)
      if wait == 0 and policy == 'only_if_failed' then
        -- A batch's on_failure whose parents all succeeded: nothing failed, so it ends as
        -- skipped (its own waiting children are settled by that end).
        job_set(prefix, id, 'state', 'completed', 'finished', now_s, 'skipped', 'no parent failed')
        redis.call('ZADD', KEYS[7], now, id)
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
if planned then redis.call('HDEL', fk, 'cancel') end
if again > 0 then
  redis.call('HDEL', fk, 'cancel', 'finished')
  redis.call('PERSIST', fk)
  redis.call('ZREM', queue_key(prefix, 'flow-ends'), flow_id_of(jp))
end
if #ready > 0 then
  local priorities = {}
  for n, id in ipairs(ready) do priorities[n] = job_get(prefix, id, {'priority'})[1] end
  pending_push(prefix, ready, priorities)
  wake(KEYS[3])
end
publish(prefix)
return again
