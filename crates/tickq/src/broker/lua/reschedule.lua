-- reschedule: move a waiting job (scheduled, retry or pending) to a new due time.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] wake stream
-- ARGV[1] job key prefix  ARGV[2] id  ARGV[3] at_ms (> 0: due at this Redis time)
-- ARGV[4] delay_ms (> 0: due this long after Redis now; both 0: now)
-- The job becomes scheduled at the new time, or pending when that time has come. A retry job
--   keeps its attempts (only its wait changes).
-- Returns the state it had, 'notfound', or (refused, nothing changed) 'active', 'dead',
--   'completed', 'cancelled'.
-- Idempotent: yes; a repeated call sets the same due time again.
local id = ARGV[2]
local f = job_get(ARGV[1], id, {'state', 'priority'})
local state = f[1]
if not state then return 'notfound' end
local from = {pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3]}
if not from[state] then return state end
local now = now_ms()
local at, delay = tonumber(ARGV[3]), tonumber(ARGV[4])
local due = now
if at > 0 then due = at elseif delay > 0 then due = now + delay end
if state == 'pending' then
  pending_remove(ARGV[1], id, f[2])
else
  redis.call('ZREM', from[state], id)
end
if due > now then
  job_set(ARGV[1], id, 'state', 'scheduled', 'due', str(due))
  redis.call('ZADD', KEYS[2], due, id)
  event('scheduled', id)
else
  job_set(ARGV[1], id, 'state', 'pending', 'due', str(now))
  pending_push(ARGV[1], {id}, {f[2]})
  event('pending', id)
end
-- Sleeping workers computed their wake-up from the earliest due job; let them look again.
wake(KEYS[4])
publish(ARGV[1])
return state
