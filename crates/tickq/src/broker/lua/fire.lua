-- fire: fire due ticks of one schedule, once across every node that tries.
-- KEYS[1] schedule hash  KEYS[2] schedules-due index  KEYS[3] pending
-- KEYS[4] wake stream  KEYS[5] scheduled  KEYS[6] retry  KEYS[7] cancelled
-- ARGV[1] job key prefix  ARGV[2] schedule name  ARGV[3] expected version
-- ARGV[4] expected next fire time (the tick the caller found due)  ARGV[5] new next fire time
-- ARGV[6] new watermark (the latest due tick)  ARGV[7] ticks skipped by the catch-up policy
-- ARGV[8] ticks fired  ARGV[9] keep ms (jobs cancelled by overlap 'replace';
--   unread since layout 5: the janitor deletes them by their index's age)
-- then 5 per job: id, data, priority, max attempts, group (the tick, for spreading its tasks)
-- The compare-and-set on (version, next) makes racing nodes harmless: the first moves `next`,
--   the others find it moved and answer 'raced'. Job ids are deterministic per tick and task,
--   and a job that exists is left alone, so even a repeated tick creates nothing twice.
-- Due is decided by Redis TIME: a node whose clock runs ahead cannot fire early ('early').
-- Overlap (from the spec, read here): 'forbid' skips the ticks while a job of the last fired
--   tick is still waiting or running; 'replace' cancels those jobs first (a running one gets a
--   cancel request); 'allow' ignores them.
-- Returns {'fired', jobs created} | {'overlap', 0} | {'raced', 0} | {'early', 0} |
--   {'paused', 0} | {'gone', 0}.
-- Idempotent: yes; a repeated call answers 'raced'.
local prefix = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'version', 'next', 'paused', 'spec', 'last_jobs')
if not f[1] then return {'gone', 0} end
if f[1] ~= ARGV[3] or f[2] ~= ARGV[4] then return {'raced', 0} end
if f[3] == '1' then return {'paused', 0} end
local now = now_ms()
if tonumber(ARGV[4]) > now then return {'early', 0} end

local function advance(fired, skipped)
  redis.call('HSET', KEYS[1], 'next', ARGV[5], 'watermark', ARGV[6])
  if fired > 0 then redis.call('HSET', KEYS[1], 'last_fired_at', now) end
  redis.call('HINCRBY', KEYS[1], 'fired', fired)
  redis.call('HINCRBY', KEYS[1], 'skipped', skipped)
  if tonumber(ARGV[5]) < 0 then
    redis.call('ZREM', KEYS[2], ARGV[2]) -- the expression has no later tick
  else
    redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[2])
  end
end

if tonumber(ARGV[8]) == 0 then
  -- The catch-up policy fires none of the due ticks: only move on.
  advance(0, tonumber(ARGV[7]))
  return {'fired', 0}
end

local overlap = cjson.decode(f[4])['overlap'] or 'allow'
local last = {}
if f[5] and f[5] ~= '' then last = cjson.decode(f[5]) end
local waiting = {pending = KEYS[3], scheduled = KEYS[5], retry = KEYS[6]}
if overlap ~= 'allow' then
  local busy = false
  for _, id in ipairs(last) do
    local state, priority = unpack(job_get(prefix, id, {'state', 'priority'}))
    if state == 'active' or waiting[state] then
      busy = true
      if overlap == 'replace' then
        if state == 'active' then
          job_set(prefix, id, 'cancel', 1)
        else
          if state == 'pending' then
            pending_remove(prefix, id, priority)
          else
            redis.call('ZREM', waiting[state], id)
          end
          job_set(prefix, id, 'state', 'cancelled', 'finished', now,
            'error', 'replaced by a newer tick of schedule ' .. ARGV[2])
          redis.call('ZADD', KEYS[7], now, id)
        end
      end
    end
  end
  if busy and overlap == 'forbid' then
    advance(0, tonumber(ARGV[7]) + tonumber(ARGV[8]))
    return {'overlap', 0}
  end
end

local created = 0
local ids = {}
local n = (#ARGV - 9) / 5
local ready, ready_prio = {}, {}
for i = 0, n - 1 do
  local b = 10 + i * 5
  local id = ARGV[b]
  ids[#ids + 1] = id
  if not job_exists(prefix, id) then
    job_create(prefix, id, ARGV[b + 1], 'pending', ARGV[b + 3], ARGV[b + 2], str(now), str(now),
      'group', ARGV[b + 4])
    ready[#ready + 1] = id
    ready_prio[#ready] = ARGV[b + 2]
    created = created + 1
    event('pending', id)
  end
end
if #ready > 0 then
  pending_push(prefix, ready, ready_prio)
  wake(KEYS[4])
end
-- Remember the jobs of the newest tick (the last task ids) for the next overlap check.
local tasks = tonumber(ARGV[8]) > 0 and n / tonumber(ARGV[8]) or 0
local newest = {}
for i = #ids - tasks + 1, #ids do newest[#newest + 1] = ids[i] end
redis.call('HSET', KEYS[1], 'last_jobs', cjson.encode(newest))
advance(tonumber(ARGV[8]), tonumber(ARGV[7]))
count(prefix, now, 'e', created)
publish(prefix)
return {'fired', created}
