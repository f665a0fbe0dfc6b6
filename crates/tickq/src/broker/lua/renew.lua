#!lua flags=allow-oom
-- renew: extend the leases a worker holds.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] active
-- ARGV[1] job key prefix  ARGV[2] lease ms; then 2 per job: id, fence
-- A lease is renewed only while the job is active with the same fence AND its deadline has not
--   passed: a holder that could not renew in time has already abandoned the job (its side of
--   the contract), so a late renewal must not keep it from recovery.
-- Returns {deadline, {lost id...}, {cancel-requested id...}}.
-- Idempotent: yes; renewing twice only moves the deadline again.
local prefix = ARGV[1]
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local lost = {}
local cancel = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local f = job_get(prefix, id, {'state', 'fence', 'lease', 'cancel'})
  if f[1] == 'active' and f[2] == ARGV[i + 1] and (tonumber(f[3]) or 0) >= now then
    job_set(prefix, id, 'lease', deadline)
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    if f[4] then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {deadline, lost, cancel}
