#!lua flags=allow-oom
-- requeue: hand leased jobs back to pending without charging the attempt (graceful shutdown).
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] active  KEYS[2] pending  KEYS[3] wake stream
-- ARGV[1] job key prefix; then 2 per job: id, fence
-- Only jobs still held with the same fence move; the attempt counter goes back by one so the
--   interrupted run does not count against max attempts.
-- Returns the number of jobs handed back.
-- Idempotent: yes; a second call finds the jobs pending and does nothing.
local prefix = ARGV[1]
local moved, back_prio = {}, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local f = job_get(prefix, id, {'state', 'fence', 'attempt', 'priority'})
  if f[1] == 'active' and f[2] == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    job_set(prefix, id, 'state', 'pending', 'attempt', math.max((tonumber(f[3]) or 1) - 1, 0))
    job_unset(prefix, id, 'owner', 'lease')
    moved[#moved + 1] = id
    back_prio[#moved] = f[4]
    event('pending', id)
  end
end
pending_push(prefix, moved, back_prio)
if #moved > 0 then wake(KEYS[3]) end
publish(prefix)
return #moved
