#!lua flags=allow-oom
-- delete: remove a job that is not running, whatever its state.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] completed  KEYS[5] dead
-- KEYS[6] cancelled
-- ARGV[1] job key prefix  ARGV[2] id
-- A deleted job frees its unique key. A workflow step deleted before it ended counts as
--   cancelled for its workflow, so its waiting children are settled, never left waiting.
-- A waiting workflow step can be deleted too.
-- Returns the state the job had, 'notfound', or 'active' (refused: cancel it first).
-- Idempotent: yes; a second call answers 'notfound'.
local f = job_get(ARGV[1], ARGV[2], {'state', 'unique', 'flow', 'step', 'priority'})
local state = f[1]
if not state then return 'notfound' end
if state == 'active' then return 'active' end
free_unique(f[2], ARGV[2])
local from = {pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3], completed = KEYS[4],
  dead = KEYS[5], cancelled = KEYS[6], waiting = queue_key(ARGV[1], 'waiting')}
if state == 'pending' then
  pending_remove(ARGV[1], ARGV[2], f[5])
elseif from[state] then
  redis.call('ZREM', from[state], ARGV[2])
end
job_del(ARGV[1], ARGV[2])
event('deleted', ARGV[2])
flow_ended(ARGV[1], f[3], f[4], 'cancelled', nil, now_ms())
publish(ARGV[1])
return state
