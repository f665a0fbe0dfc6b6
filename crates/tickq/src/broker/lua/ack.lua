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
local runs = {}
local done = {}
local again = 0
local index = {}
local stale = {}
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  local f = job_get(prefix, id, {'state', 'fence', 'unique', 'started', 'flow', 'step'})
  if f[1] == 'active' and f[2] == ARGV[i + 1] then
    done[#done + 1] = id
    runs[#runs + 1] = run_ms(f[4], now)
    event('completed', id)
    free_unique(f[3], id)
    if keep then
      if ARGV[i + 2] ~= '' then
        job_set(prefix, id, 'state', 'completed', 'finished', now_s, 'result', ARGV[i + 2])
      else
        job_set(prefix, id, 'state', 'completed', 'finished', now_s)
      end
      index[#index + 1] = now_s
      index[#index + 1] = id
    else
      job_del(prefix, id)
    end
    flow_ended(prefix, f[5], f[6], 'completed', ARGV[i + 2], now)
  elseif f[1] == 'completed' and f[2] == ARGV[i + 1] then
    again = again + 1
  else
    stale[#stale + 1] = id
  end
end
if #done > 0 then
  zrem_many(KEYS[1], done)
  redis.call('HINCRBY', KEYS[3], 'processed', #done)
  count(prefix, now, 'p', #done)
  count_runs(prefix, now, runs)
  publish(prefix)
  wake_if_limited(KEYS[4], KEYS[5], KEYS[6])
end
if #index > 0 then
  zadd_many(KEYS[2], index)
  cap_index(prefix, KEYS[2], keep_max)
end
local out = {#done, again}
for _, id in ipairs(stale) do out[#out + 1] = id end
return out
