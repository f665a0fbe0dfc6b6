-- schedule_upsert: create or change a schedule; the same spec again changes nothing.
-- KEYS[1] schedule hash  KEYS[2] queue's schedules-due index
-- ARGV[1] schedule name  ARGV[2] spec (canonical JSON)  ARGV[3] first fire time (Redis ms,
--   computed by the caller from the cron expression after Redis' now; used only when the spec
--   is new or changed)  ARGV[4] now as seen by the caller (Redis ms)
-- A changed spec gets version + 1 and starts afresh: its next fire time is ARGV[3] and its
--   watermark (last tick fired) is now, so ticks of the old spec are never caught up under the
--   new one. Pause state and counters are kept.
-- Returns {'created'|'updated'|'unchanged', version, next fire time}.
-- Idempotent: yes; a repeated call answers 'unchanged'.
local f = redis.call('HMGET', KEYS[1], 'spec', 'version', 'next')
if f[1] == ARGV[2] then
  return {'unchanged', tonumber(f[2]), tonumber(f[3])}
end
local version = (tonumber(f[2]) or 0) + 1
local now = now_ms()
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'version', version, 'next', ARGV[3],
  'watermark', now, 'updated', now)
if not f[1] then
  redis.call('HSET', KEYS[1], 'created', now, 'fired', 0, 'skipped', 0, 'paused', 0)
end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
if f[1] then return {'updated', version, tonumber(ARGV[3])} end
return {'created', version, tonumber(ARGV[3])}
