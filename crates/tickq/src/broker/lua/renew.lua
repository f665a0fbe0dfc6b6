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
local ids = {}
for i = 3, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {deadline, {}, {}} end
-- The running facts and lease deadlines of the batch, one call each (prelude.lua, "Job
-- records"); a job claimed by a tickq older than the `running` hash has none and is not
-- renewed (its holder was that older version).
local runs = hmget_many(queue_key(prefix, 'running'), ids)
local leases = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local lost = {}
local cancel = {}
local renewed = {}
for k, id in ipairs(ids) do
  local run, fence = runs[k], ARGV[2 + 2 * k]
  if run and string.sub(run, 1, #fence + 1) == fence .. ' ' and
      (tonumber(leases[k]) or 0) >= now then
    renewed[#renewed + 1] = deadline
    renewed[#renewed + 1] = id
    if job_get(prefix, id, {'cancel'})[1] then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
if #renewed > 0 then zadd_many(KEYS[1], renewed) end
return {deadline, lost, cancel}
