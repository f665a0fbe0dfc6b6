#!lua flags=allow-oom
-- fail: end one attempt of a leased job that did not succeed, if the caller still holds it.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] active  KEYS[2] retry  KEYS[3] dead  KEYS[4] cancelled  KEYS[5] stats  KEYS[6] wake stream
-- KEYS[7] limits  KEYS[8] pending
-- ARGV[1] job key prefix  ARGV[2] id  ARGV[3] fence  ARGV[4] error text
-- ARGV[5] mode: 'retry' (after ARGV[6] ms, or dead when attempts are used up), 'kill' (dead
--   now), 'cancel' (cancelled: the job was cancelled while it ran)
-- ARGV[6] retry delay ms  ARGV[7] dead max  ARGV[8] keep ms (cancelled jobs;
--   unread since layout 5: the janitor deletes them by their index's age)
-- A job that ends here (dead, cancelled) frees its unique key; a retry keeps it. Leaving active
--   wakes an idle worker on a queue with a concurrency limit.
-- Returns 'retry' | 'dead' | 'cancelled' | 'stale' (not applied: lease lost, or job gone).
-- A workflow step that ends here (dead, cancelled) settles its waiting children (`flow_ended`).
-- The attempt is counted in the queue's history (failed, retried or dead, and its run time) and
--   sent as an event.
-- Idempotent: yes; a second call finds the job no longer active with that fence: 'stale'.
local prefix = ARGV[1]
local id = ARGV[2]
local f = job_get(prefix, id, {'state', 'fence', 'attempt', 'max', 'unique', 'started',
  'flow', 'step'})
if f[1] ~= 'active' or f[2] ~= ARGV[3] then return 'stale' end
local now = now_ms()
local mode = ARGV[5]
local run = run_ms(f[6], now)
if run then count_runs(prefix, now, {run}) end
redis.call('ZREM', KEYS[1], id)
wake_if_limited(KEYS[7], KEYS[8], KEYS[6])
if mode == 'cancel' then
  job_set(prefix, id, 'state', 'cancelled', 'finished', now, 'error', ARGV[4])
  job_unset(prefix, id, 'cancel')
  redis.call('ZADD', KEYS[4], now, id)
  free_unique(f[5], id)
  event('cancelled', id)
  flow_ended(prefix, f[7], f[8], 'cancelled', nil, now)
  publish(prefix)
  return 'cancelled'
end
redis.call('HINCRBY', KEYS[5], 'failed', 1)
count(prefix, now, 'f', 1)
if mode == 'kill' or (tonumber(f[3]) or 0) >= (tonumber(f[4]) or 0) then
  job_set(prefix, id, 'state', 'dead', 'finished', now, 'error', ARGV[4])
  redis.call('ZADD', KEYS[3], now, id)
  cap_index(prefix, KEYS[3], tonumber(ARGV[7]))
  free_unique(f[5], id)
  count(prefix, now, 'd', 1)
  event('dead', id)
  flow_ended(prefix, f[7], f[8], 'dead', nil, now)
  publish(prefix)
  return 'dead'
end
local due = now + tonumber(ARGV[6])
job_set(prefix, id, 'state', 'retry', 'due', due, 'error', ARGV[4])
redis.call('ZADD', KEYS[2], due, id)
wake(KEYS[6])
count(prefix, now, 'r', 1)
event('retry', id)
publish(prefix)
return 'retry'
