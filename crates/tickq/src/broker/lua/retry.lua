-- retry: run a dead, cancelled, retry or scheduled job now.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] dead  KEYS[5] cancelled
-- KEYS[6] wake stream
-- ARGV[1] job key prefix  ARGV[2] id
-- A dead or cancelled job starts over with a fresh attempt budget and no cancel request; a retry
--   or scheduled job keeps its attempts and only skips the wait.
-- Returns the state it had, 'notfound', or (refused, nothing changed) 'pending', 'active',
--   'completed'.
-- Idempotent: yes; a second call finds the job pending and answers 'pending'.
local id = ARGV[2]
local f = job_get(ARGV[1], id, {'state', 'priority'})
local state = f[1]
if not state then return 'notfound' end
local from = {scheduled = KEYS[2], retry = KEYS[3], dead = KEYS[4], cancelled = KEYS[5]}
if not from[state] then return state end
redis.call('ZREM', from[state], id)
if state == 'dead' or state == 'cancelled' then
  job_set(ARGV[1], id, 'attempt', 0)
  -- A cancel asked during the last run (which then failed for good before its worker saw it)
  -- must not cancel the run started here.
  job_unset(ARGV[1], id, 'finished', 'cancel')
end
job_set(ARGV[1], id, 'state', 'pending', 'due', now_ms())
pending_push(ARGV[1], {id}, {f[2]})
wake(KEYS[6])
event('pending', id)
publish(ARGV[1])
return state
