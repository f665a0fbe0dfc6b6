#!lua flags=allow-oom
-- Lab (tickq-bench `layout-floor`): the claim of the lean layout, which keeps no per-job
-- record on the hot path. A waiting job is its id in the pending LIST and its payload record
-- (the fields a worker needs, packed by the producer) as one field of the queue's `jobs`
-- hash, written once and returned as stored; a running job is its id in `active` (score: the
-- lease deadline) plus one field of the `run` hash: "fence started attempt owner". Its state
-- is the index it is in. Every call below is one per batch, whatever the batch size.
-- KEYS[1] pending (list)  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] active  KEYS[5] jobs
-- KEYS[6] run  KEYS[7] attempts (sparse: jobs that ran before)  KEYS[8] fence counter
-- KEYS[9] paused  KEYS[10] limits  KEYS[11] groups (sparse: jobs of a cron tick)  KEYS[12] wake
-- ARGV[1] job key prefix (events, history)  ARGV[2] owner  ARGV[3] lease ms  ARGV[4] max
-- Returns {now, next_due, deadline, id1, record1, attempt1, fence1, id2, ...}.
-- Not built (the bench needs none; each is per-call work in the batch, not per job): moving
-- due jobs (it only looks), applying limits (it only reads them), spreading tick groups.
local owner = ARGV[2]
local now = now_ms()
local max = tonumber(ARGV[4])
local deadline = now + tonumber(ARGV[3])
for _, due_key in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('ZRANGE', due_key, '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
end
if redis.call('EXISTS', KEYS[9]) == 1 then return {now, -1, deadline} end
redis.call('HMGET', KEYS[10], 'concurrency', 'rate', 'per')
local ids = redis.call('LPOP', KEYS[1], max)
if not ids then return {now, -1, deadline} end
local records = redis.call('HMGET', KEYS[5], unpack(ids))
local attempts = {}
if redis.call('EXISTS', KEYS[7]) == 1 then attempts = redis.call('HMGET', KEYS[7], unpack(ids)) end
if redis.call('EXISTS', KEYS[11]) == 1 then redis.call('HMGET', KEYS[11], unpack(ids)) end
local fence_next = reserve_fences(KEYS[8], #ids)
local now_s, deadline_s = str(now), str(deadline)
local out = {now, -1, deadline}
local leases, runs = {}, {}
for i, id in ipairs(ids) do
  if records[i] then
    local attempt = (tonumber(attempts[i]) or 0) + 1
    fence_next = fence_next + 1
    local fence = str(fence_next)
    local n = #leases
    leases[n + 1] = deadline_s
    leases[n + 2] = id
    runs[n + 1] = id
    runs[n + 2] = fence .. ' ' .. now_s .. ' ' .. attempt .. ' ' .. owner
    local o = #out
    out[o + 1] = id
    out[o + 2] = records[i]
    out[o + 3] = attempt
    out[o + 4] = fence
    event('active', id)
  end
end
if #leases > 0 then
  zadd_many(KEYS[4], leases)
  redis.call('HSET', KEYS[6], unpack(runs))
end
if redis.call('LLEN', KEYS[1]) > 0 then
  wake(KEYS[12])
  out[2] = now
end
publish(ARGV[1])
return out
