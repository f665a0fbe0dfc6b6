#!lua flags=allow-oom
-- cancel: stop a job. Jobs not running (waiting, scheduled, pending, retry) become cancelled at
-- once; an
-- active job gets a cancel request that its worker sees at its next lease renewal.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] cancelled
-- ARGV[1] job key prefix  ARGV[2] id  ARGV[3] keep ms
--   (unread since layout 5: the janitor deletes cancelled jobs by their index's age)
-- A workflow step cancelled here settles its waiting children (`flow_ended`).
-- A job cancelled here frees its unique key (an active one frees it when its worker stops).
-- Returns 'cancelled' (done now), 'cancelling' (active: asked), 'notfound', or the job's state
--   when it is already finished ('completed', 'dead', 'cancelled').
-- Idempotent: yes; cancelling a cancelled job answers 'cancelled' and changes nothing.
local id = ARGV[2]
local f = job_get(ARGV[1], id, {'state', 'unique', 'flow', 'step', 'priority'})
local state = f[1]
if not state then return 'notfound' end
local from = {pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3],
  waiting = queue_key(ARGV[1], 'waiting')}
if from[state] then
  free_unique(f[2], id)
  local now = now_ms()
  if state == 'pending' then
    pending_remove(ARGV[1], id, f[5])
  else
    redis.call('ZREM', from[state], id)
  end
  job_set(ARGV[1], id, 'state', 'cancelled', 'finished', now)
  redis.call('ZADD', KEYS[4], now, id)
  event('cancelled', id)
  flow_ended(ARGV[1], f[3], f[4], 'cancelled', nil, now)
  publish(ARGV[1])
  return 'cancelled'
end
if state == 'active' then
  job_set(ARGV[1], id, 'cancel', 1)
  return 'cancelling'
end
return state
