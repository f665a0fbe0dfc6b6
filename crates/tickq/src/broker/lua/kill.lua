#!lua flags=allow-oom
-- kill: send a waiting job (scheduled, pending, retry) to dead by hand; it is kept there and
-- can be retried like any dead job.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] dead
-- ARGV[1] job key prefix  ARGV[2] id  ARGV[3] dead max
-- A killed job frees its unique key; a killed workflow step settles its waiting children.
-- A waiting workflow step can be killed too.
-- Returns the state the job had (it is now dead), 'notfound', or (refused, nothing changed)
--   'active', 'dead', 'completed', 'cancelled'.
-- Idempotent: yes; a second call finds the job dead and answers 'dead'.
local id = ARGV[2]
local f = job_get(ARGV[1], id, {'state', 'unique', 'flow', 'step', 'priority'})
local state = f[1]
if not state then return 'notfound' end
local from = {pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3],
  waiting = queue_key(ARGV[1], 'waiting')}
if not from[state] then return state end
free_unique(f[2], id)
local now = now_ms()
if state == 'pending' then
  pending_remove(ARGV[1], id, f[5])
else
  redis.call('ZREM', from[state], id)
end
job_set(ARGV[1], id, 'state', 'dead', 'finished', str(now), 'error', 'killed by hand')
redis.call('ZADD', KEYS[4], now, id)
cap_index(ARGV[1], KEYS[4], tonumber(ARGV[3]))
count(ARGV[1], now, 'd', 1)
event('dead', id)
flow_ended(ARGV[1], f[3], f[4], 'dead', nil, now)
publish(ARGV[1])
return state
