#!lua flags=allow-oom
-- recover: take back jobs whose lease expired (their worker died, stalled or was cut off).
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] active  KEYS[2] pending  KEYS[3] dead  KEYS[4] cancelled  KEYS[5] wake stream
-- KEYS[6] stats  KEYS[7] limits
-- ARGV[1] job key prefix  ARGV[2] max jobs  ARGV[3] dead max  ARGV[4] keep ms (cancelled;
--   unread since layout 5: the janitor deletes them by their index's age)
-- An expired job goes back to pending with its attempt kept (the next claim counts a new
--   attempt), to dead when that attempt was its last, or to cancelled when a cancel was asked.
-- Jobs that end here (dead, cancelled) free their unique key. Any recovered job wakes an idle
--   worker when work waits (to pending: that job; with a concurrency limit: the freed slot).
-- A workflow step that ends here (dead, cancelled) settles its waiting children (`flow_ended`).
-- Returns {to pending, to dead, to cancelled}.
-- Idempotent: yes; a job is recovered once, then it is no longer active.
local prefix = ARGV[1]
local now = now_ms()
local ids = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local to_pending, to_dead, to_cancelled = 0, 0, 0
local back, back_prio = {}, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local f = job_get(prefix, id, {'state', 'attempt', 'max', 'priority', 'cancel', 'unique',
    'flow', 'step'})
  if f[1] == 'active' then
    local err = 'lease expired: the worker holding attempt ' .. (f[2] or '?') ..
      ' stopped renewing it (crashed, stalled or cut off from Redis)'
    if f[5] then
      job_set(prefix, id, 'state', 'cancelled', 'finished', now, 'error', 'cancelled')
      job_unset(prefix, id, 'cancel', 'owner', 'lease')
      redis.call('ZADD', KEYS[4], now, id)
      free_unique(f[6], id)
      to_cancelled = to_cancelled + 1
      event('cancelled', id)
      flow_ended(prefix, f[7], f[8], 'cancelled', nil, now)
    elseif (tonumber(f[2]) or 0) >= (tonumber(f[3]) or 0) then
      job_set(prefix, id, 'state', 'dead', 'finished', now, 'error', err)
      job_unset(prefix, id, 'owner', 'lease')
      redis.call('ZADD', KEYS[3], now, id)
      redis.call('HINCRBY', KEYS[6], 'failed', 1)
      cap_index(prefix, KEYS[3], tonumber(ARGV[3]))
      free_unique(f[6], id)
      to_dead = to_dead + 1
      event('dead', id)
      flow_ended(prefix, f[7], f[8], 'dead', nil, now)
    else
      job_set(prefix, id, 'state', 'pending', 'error', err)
      job_unset(prefix, id, 'owner', 'lease')
      back[#back + 1] = id
      back_prio[#back] = f[4]
      to_pending = to_pending + 1
      event('pending', id)
    end
  end
end
pending_push(prefix, back, back_prio)
if to_pending > 0 then
  wake(KEYS[5])
elseif to_dead + to_cancelled > 0 then
  wake_if_limited(KEYS[7], KEYS[2], KEYS[5])
end
count(prefix, now, 'f', to_dead)
count(prefix, now, 'd', to_dead)
publish(prefix)
return {to_pending, to_dead, to_cancelled}
