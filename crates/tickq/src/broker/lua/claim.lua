-- claim: promote due scheduled/retry jobs, then lease up to N pending jobs to one worker.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] active  KEYS[5] seq  KEYS[6] marker
-- ARGV[1] job key prefix  ARGV[2] owner (worker id)  ARGV[3] lease ms  ARGV[4] max jobs
-- Each claimed job: attempt + 1, fence + 1 (the fencing token grows with every claim), state
--   active, lease deadline = Redis now + lease ms, indexed in active by that deadline.
-- Returns {now, next_due, deadline, id1, data1, attempt1, fence1, id2, ...}; next_due is the
--   Redis time at which the caller should look again: now when pending jobs remain, the
--   earliest scheduled/retry due time otherwise, -1 when nothing waits at all.
-- Idempotent: no; every call leases new jobs (that is its point). Ids whose job hash is gone
--   are dropped; a hash without data is still leased so the worker can send it to dead.
local prefix = ARGV[1]
local now = now_ms()
local max = tonumber(ARGV[4])
promote(prefix, KEYS[2], KEYS[1], KEYS[5], now, 1000)
promote(prefix, KEYS[3], KEYS[1], KEYS[5], now, 1000)
local deadline = now + tonumber(ARGV[3])
local out = {now, -1, deadline}
local leases = {}
if max > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], max)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local jk = prefix .. id
    local f = redis.call('HMGET', jk, 'data', 'attempt', 'fence', 'state')
    if f[1] or f[4] then
      local attempt = (tonumber(f[2]) or 0) + 1
      local fence = (tonumber(f[3]) or 0) + 1
      redis.call('HSET', jk, 'state', 'active', 'attempt', attempt, 'fence', fence,
        'owner', ARGV[2], 'lease', deadline, 'started', now)
      leases[#leases + 1] = deadline
      leases[#leases + 1] = id
      out[#out + 1] = id
      out[#out + 1] = f[1] or ''
      out[#out + 1] = attempt
      out[#out + 1] = fence
    end
  end
end
if #leases > 0 then zadd_many(KEYS[4], leases) end
if redis.call('ZCARD', KEYS[1]) > 0 then
  -- Work is left: let another idle worker start on it while this one is busy.
  if #leases > 0 then wake(KEYS[6]) end
  out[2] = now
else
  local next_due = -1
  for _, k in ipairs({KEYS[2], KEYS[3]}) do
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local due = tonumber(first[2])
      if next_due < 0 or due < next_due then next_due = due end
    end
  end
  out[2] = next_due
end
return out
