#!lua flags=allow-oom
-- claim: promote due scheduled/retry jobs, then lease up to N pending jobs to one worker.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] active  KEYS[5] wake stream
-- KEYS[6] fence counter  KEYS[7] paused flag  KEYS[8] limits  KEYS[9] rate log
-- ARGV[1] job key prefix  ARGV[2] owner (worker id)  ARGV[3] lease ms  ARGV[4] max jobs
-- ARGV[5] group key prefix  ARGV[6] spread grace ms
-- Each claimed job: attempt + 1, a new fence from the queue's counter (greater than every
--   earlier fence of the queue and than Redis' clock in µs, so it grows with every claim of
--   the job, also across a failover that lost writes: reserve_fences), state
--   active, lease deadline = Redis now + lease ms, indexed in active by that deadline. These
--   facts go to the queue's `running` hash in one call for the batch; no job's record is
--   written (prelude.lua, "Job records").
-- Spread: jobs of one group (the tasks of one cron tick) go to different workers. A worker that
--   already holds a job of the group passes over the next one while it is younger than the
--   spread grace, so that an idle peer takes it; after the grace anyone may, so a dead or busy
--   peer never holds work back.
-- Returns {now, next_due, deadline, id1, payload1, attempt1, fence1, due1, id2, ...}: payload
--   as stored ("<created> <due> <max> <priority>\n<data>"), due = its changed due time ('' when
--   the payload's holds); next_due is the
--   Redis time at which the caller should look again: now when pending jobs remain that it may
--   take, the end of a spread grace when it passed over jobs, else the earliest scheduled/retry
--   due time, or -1 when nothing waits at all.
-- Limits (KEYS[8], all optional): 'concurrency' caps the queue's active jobs across every
--   worker; 'rate' caps starts in any window of 'per' ms (a sliding log of start times in
--   KEYS[9]). A limited claim leases fewer jobs or none; jobs wait, nothing fails. When the
--   rate is used up, next_due is the time its oldest start leaves the window; when the
--   concurrency is used up, the caller waits for a wake-up (ack and fail send one).
-- Paused (KEYS[7] exists): due jobs are still promoted, nothing is leased, and next_due is -1,
--   so idle workers sleep until a wake-up (resume wakes them) instead of polling.
-- Idempotent: no; every call leases new jobs (that is its point). Ids whose payload is gone
--   are dropped; a payload without data is still leased so the worker can send it to dead.
local prefix = ARGV[1]
local owner = ARGV[2]
local now = now_ms()
local max = tonumber(ARGV[4])
local grace = tonumber(ARGV[6])
promote(prefix, KEYS[2], now, 1000)
promote(prefix, KEYS[3], now, 1000)
local deadline = now + tonumber(ARGV[3])
-- Checked inside the script, after which nothing yields: once a pause is applied, no claim
-- that runs later can lease a job of the queue.
if redis.call('EXISTS', KEYS[7]) == 1 then
  publish(prefix)
  return {now, -1, deadline}
end
local now_s, deadline_s = str(now), str(deadline)
local out = {now, -1, deadline}
-- Lower max to what the queue's limits allow now; `full` says a limit is used up.
local limits = redis.call('HMGET', KEYS[8], 'concurrency', 'rate', 'per')
local full = false
local rate_free_at = nil
if limits[1] then
  local free = tonumber(limits[1]) - redis.call('ZCARD', KEYS[4])
  if free <= max then
    max = math.max(free, 0)
    full = true
  end
end
local per = tonumber(limits[3])
if limits[2] and per then
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - per)
  local free = tonumber(limits[2]) - redis.call('ZCARD', KEYS[9])
  if free <= max then
    max = math.max(free, 0)
    full = true
    local oldest = redis.call('ZRANGE', KEYS[9], 0, 0, 'WITHSCORES')
    rate_free_at = (#oldest > 0 and tonumber(oldest[2]) or now) + per
  end
end
local leases = {}
local runs = {} -- running hash entries: id, facts
local ran_before = {} -- ids with an `attempts` entry
local passed, passed_prio = {}, {} -- jobs passed over for spreading, to put back
local starts = {} -- rate log entries: score now, member id:fence (unique per claim)
local rate_limited = limits[2] and per
local passed_until = nil
-- Pop the head of pending, and more while jobs were passed over for spreading, but look at
-- most a little past `max` so that passed jobs do not starve the rest. The passed ones go back
-- to the front of their lists, in their order (their place), and ids whose record is gone are
-- dropped.
local budget = max + 64
-- Whether pending jobs remain: each pop answers it; a claim that may take none asks.
local left = max > 0 or pending_any(KEYS[1])
while max > 0 and #leases / 2 < max and budget > 0 and left do
  local head
  head, left = pending_pop(prefix, math.min(max - #leases / 2, budget))
  if #head == 0 then break end
  budget = budget - #head
  -- Fences come from the queue's counter, not the job's own: still growing with every claim
  -- of a job, and never repeated when a deleted job's id is used again (a zombie of the old
  -- job must not match the new one), nor after a failover that lost claims
  -- (reserve_fences). One reservation covers the jobs popped.
  local fence_next = reserve_fences(KEYS[6], #head)
  -- One call reads the batch's payloads, and one each the sparse facts that exist in the
  -- queue; a plain job costs no call of its own. The payload goes to the worker as stored.
  local recs = redis.call('HMGET', queue_key(prefix, 'jobs'), unpack(head))
  local attempts, groups, dues, ends = sparse_get(prefix, 'attempts', head),
    sparse_get(prefix, 'groups', head), sparse_get(prefix, 'dues', head),
    sparse_get(prefix, 'ends', head)
  for k, id in ipairs(head) do
    local rec = recs[k]
    if rec then -- else the job is gone: the id is dropped
      local pass = false
      local group = groups and groups[k]
      if group and grace > 0 then
        local gk = ARGV[5] .. group
        local ready_at = (tonumber((payload_header(rec))) or 0) + grace
        if now < ready_at and redis.call('SISMEMBER', gk, owner) == 1 then
          pass = true
          if passed_until == nil or ready_at < passed_until then passed_until = ready_at end
        else
          redis.call('SADD', gk, owner)
          redis.call('PEXPIRE', gk, 86400000)
        end
      end
      if pass then
        passed[#passed + 1] = id
        passed_prio[#passed] = select(4, payload_header(rec))
      else
        local attempt = 1
        if attempts and attempts[k] then
          attempt = tonumber(attempts[k]) + 1
          ran_before[#ran_before + 1] = id
        end
        fence_next = fence_next + 1
        local fence = str(fence_next)
        -- The run's facts, in the queue's `running` hash (prelude.lua, "Job records"): the
        -- record itself is not written.
        local run = fence .. ' ' .. now_s .. ' ' .. attempt .. ' ' .. owner
        if ends and ends[k] then run = run .. '\n' .. ends[k] end
        local n = #leases
        leases[n + 1] = deadline_s
        leases[n + 2] = id
        runs[n + 1] = id
        runs[n + 2] = run
        local o = #out
        out[o + 1] = id
        out[o + 2] = rec
        out[o + 3] = attempt
        out[o + 4] = fence
        out[o + 5] = dues and dues[k] or ''
        event('active', id)
        if rate_limited then
          starts[#starts + 1] = now_s
          starts[#starts + 1] = id .. ':' .. fence
        end
      end
    end
  end
end
if #passed > 0 then
  pending_unpop(prefix, passed, passed_prio)
  left = true
end
if #leases > 0 then
  zadd_many(KEYS[4], leases)
  -- A running job's attempt is in its `running` entry (`attempts` holds those not running).
  if #ran_before > 0 then hdel_many(queue_key(prefix, 'attempts'), ran_before) end
  hset_many(queue_key(prefix, 'running'), runs)
end
if #starts > 0 then
  zadd_many(KEYS[9], starts)
  redis.call('PEXPIRE', KEYS[9], per)
end
if left and not full and (#leases > 0 or passed_until ~= nil) then
  -- Work is left: let another idle worker start on it while this one is busy.
  wake(KEYS[5])
end
if left and passed_until == nil and not full then
  out[2] = now
else
  local next_due = passed_until or -1
  if left and rate_free_at ~= nil and (next_due < 0 or rate_free_at < next_due) then
    next_due = rate_free_at
  end
  for _, k in ipairs({KEYS[2], KEYS[3]}) do
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local due = tonumber(first[2])
      if next_due < 0 or due < next_due then next_due = due end
    end
  end
  out[2] = next_due
end
publish(prefix)
return out
