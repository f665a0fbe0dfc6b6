#!lua flags=allow-oom
-- ack: mark leased jobs completed, if the caller still holds them.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] active  KEYS[2] completed  KEYS[3] stats  KEYS[4] limits  KEYS[5] pending
-- KEYS[6] wake stream
-- ARGV[1] job key prefix  ARGV[2] keep ms  ARGV[3] keep max; then 3 per job: id, fence, result
--   (empty result = none). keep ms or keep max of 0 deletes the job at once.
-- A kept job gets no TTL (one call less per job on the hottest path): the janitor deletes it
--   once older than keep ms, and the completed index is capped at keep max here.
-- No job's record is written (but for a result): the batch's running facts are read in one
--   call, and a kept job's completion facts go to the queue's `acked` hash in one call
--   (prelude.lua, "Job records").
-- A job is acked only while it is active with the same fence: a zombie whose lease was taken
--   over cannot complete the job someone else now holds. An acked job frees its unique key;
--   on a queue with a concurrency limit, an idle worker is woken for the freed slots.
-- Returns {acked count, again count, stale id...}: again = already completed with this fence (an
--   earlier ack of this holder was applied, e.g. one whose WAIT for replicas fell short and
--   that is sent again); stale = not applied: lease lost, or job gone.
-- A workflow step that completes settles its waiting children here (`flow_ended` in
--   prelude.lua), and its result is kept in the workflow hash for them; an ack answered as
--   again settles nothing a second time.
-- Completions are counted in the queue's history (with their run times) and sent as events.
-- Idempotent: yes; a second ack of the same job and fence finds it completed with that fence,
--   changes nothing and answers it as again (when the job was kept; a job deleted at its ack
--   answers stale).
local prefix = ARGV[1]
local keep_ms = tonumber(ARGV[2])
local keep_max = tonumber(ARGV[3])
local keep = keep_ms > 0 and keep_max > 0
local now = now_ms()
local now_s = str(now)
local running = queue_key(prefix, 'running')
local ids = {}
for i = 4, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
local runs = hmget_many(running, ids)
local done, index, acked, gone, times, ended, checks = {}, {}, {}, {}, {}, {}, {}
local applied = {}
for k, id in ipairs(ids) do
  local b = 1 + 3 * k
  local run, fence, result = runs[k], ARGV[b + 1], ARGV[b + 2]
  -- The caller's fence is a prefix of the running facts "fence started attempt owner"; an id
  -- named twice in the batch is applied once (the second is checked below, as again).
  local held = run and string.sub(run, 1, #fence + 1) == fence .. ' '
  if held and not applied[id] then
    applied[id] = true
    done[#done + 1] = id
    -- Read in place (no run_facts table per job): the start time is the second word.
    local facts, tail = run_split(run)
    local from = string.find(facts, ' ', 1, true) + 1
    local started = string.sub(facts, from, string.find(facts, ' ', from, true) - 1)
    times[#times + 1] = run_ms(started, now)
    event('completed', id)
    if keep then
      index[#index + 1] = now_s
      index[#index + 1] = id
      acked[#acked + 1] = id
      acked[#acked + 1] = now_s .. ' ' .. facts
      if result ~= '' then job_set_idle(prefix, id, 'result', result) end
    else
      gone[#gone + 1] = id
    end
    if tail then ended[#ended + 1] = {id, tail, result} end
  else
    checks[#checks + 1] = k
  end
end
if #done > 0 then
  zrem_many(KEYS[1], done)
  hdel_many(running, done)
  if #acked > 0 then hset_many(queue_key(prefix, 'acked'), acked) end
  if #gone > 0 then jobs_del(prefix, gone, false) end
  redis.call('HINCRBY', KEYS[3], 'processed', #done)
  count(prefix, now, 'p', #done)
  count_runs(prefix, now, times)
end
if #index > 0 then
  zadd_many(KEYS[2], index)
  cap_index(prefix, KEYS[2], keep_max, true)
end
-- Unique keys and workflow steps, from the running facts' tail, once the batch is recorded.
for _, e in ipairs(ended) do
  local unique, flow, step = run_ends(e[2])
  free_unique(unique, e[1])
  flow_ended(prefix, flow, step, 'completed', e[3], now)
end
if #done > 0 then
  publish(prefix)
  wake_if_limited(KEYS[4], KEYS[5], KEYS[6])
end
-- Not applied: completed already with this fence (again), or stale.
local again = 0
local out = {#done, 0}
for _, k in ipairs(checks) do
  local id = ids[k]
  local f = job_get(prefix, id, {'state', 'fence'})
  if f[1] == 'completed' and f[2] == ARGV[2 + 3 * k] then
    again = again + 1
  else
    out[#out + 1] = id
  end
end
out[2] = again
return out
