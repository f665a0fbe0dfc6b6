#!lua flags=allow-oom
-- Lab (tickq-bench `layout-floor`): the fenced ack of the lean layout (see lean_claim.lua).
-- KEYS[1] active  KEYS[2] completed  KEYS[3] stats  KEYS[4] run  KEYS[5] jobs
-- KEYS[6] ends (sparse: unique key / workflow step of the jobs that have one)  KEYS[7] limits
-- ARGV[1] job key prefix  ARGV[2] keep ms  ARGV[3] keep max  ARGV[4] the completed index:
--   'zset' (score: finish time, as tickq's) or 'list' (in finishing order; aging it by time
--   would need a finish time per job or per bucket, not built); then 2 per job: id, fence
-- A job is acked only while its `run` entry holds the caller's fence (a zombie's ack is
-- stale), as in tickq. Completed jobs stay in `completed` with their record, capped at keep
-- max like tickq's. Returns {acked, 0, stale id...}.
-- Not built: telling an ack sent again from a stale one (a real design would look in
-- `completed` for the stale ids only), results, ends (it only reads them).
local prefix = ARGV[1]
local keep_max = tonumber(ARGV[3])
local as_list = ARGV[4] == 'list'
local now = now_ms()
local now_s = str(now)
local ids, fences = {}, {}
for i = 5, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  fences[#fences + 1] = ARGV[i + 1]
end
local runs = redis.call('HMGET', KEYS[4], unpack(ids))
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('HMGET', KEYS[6], unpack(ids)) end
local done, index, times, stale = {}, {}, {}, {}
for k, id in ipairs(ids) do
  local run, fence = runs[k], fences[k]
  if run and string.sub(run, 1, #fence + 1) == fence .. ' ' then
    done[#done + 1] = id
    index[#index + 1] = now_s
    index[#index + 1] = id
    local space = string.find(run, ' ', #fence + 2, true)
    times[#times + 1] = run_ms(string.sub(run, #fence + 2, space - 1), now)
    event('completed', id)
  else
    stale[#stale + 1] = id
  end
end
if #done > 0 then
  zrem_many(KEYS[1], done)
  redis.call('HDEL', KEYS[4], unpack(done))
  redis.call('HINCRBY', KEYS[3], 'processed', #done)
  count(prefix, now, 'p', #done)
  count_runs(prefix, now, times)
  if as_list then
    local excess = redis.call('RPUSH', KEYS[2], unpack(done)) - keep_max
    if excess > 0 then
      redis.call('HDEL', KEYS[5], unpack(redis.call('LPOP', KEYS[2], excess)))
    end
  else
    zadd_many(KEYS[2], index)
    local excess = redis.call('ZCARD', KEYS[2]) - keep_max
    if excess > 0 then
      local old = redis.call('ZPOPMIN', KEYS[2], excess)
      local gone = {}
      for i = 1, #old, 2 do gone[#gone + 1] = old[i] end
      redis.call('HDEL', KEYS[5], unpack(gone))
    end
  end
  redis.call('HEXISTS', KEYS[7], 'concurrency')
  publish(prefix)
end
local out = {#done, 0}
for _, id in ipairs(stale) do out[#out + 1] = id end
return out
