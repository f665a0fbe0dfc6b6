-- flow_submit: create a whole workflow, all or nothing: its hash and every step's job.
-- KEYS[1] pending  KEYS[2] waiting  KEYS[3] seq  KEYS[4] wake stream  KEYS[5] the workflow hash
-- KEYS[6] the queue's workflow index (flows)  KEYS[7] its retention deadlines (flow-ends)
-- ARGV[1] job key prefix  ARGV[2] step job id prefix (`flow:<id>:`)  ARGV[3] name
-- ARGV[4] keep ms (after the last step ended)  ARGV[5] the definition (JSON, for views)
-- then 6 per step: step id, data (envelope), priority, max attempts, parent count, policy,
--   children (step ids, space separated)
-- Steps without parents are pending at once; the others are `waiting` (in KEYS[2], which no
--   claim reads) with `wait` = their parent count, until `flow_ended` (prelude.lua) settles
--   them. The caller checked the graph (known ids, no cycle, counts that match the edges).
-- The workflow joins the queue's workflow index (`flows`, by creation; prelude.lua).
-- Returns 'created', 'exists' (a workflow with this id is there: nothing changed), or
--   'conflict:<job id>' (a job with a step's id is there: nothing changed).
-- Idempotent: yes; a repeated call answers 'exists' and creates nothing twice.
local prefix = ARGV[1]
local jp = ARGV[2]
if redis.call('EXISTS', KEYS[5]) == 1 then return 'exists' end
local n = (#ARGV - 5) / 7
for i = 0, n - 1 do
  local id = jp .. ARGV[6 + i * 7]
  if job_exists(prefix, id) then return 'conflict:' .. id end
end
local now = now_ms()
local now_s = str(now)
redis.call('HSET', KEYS[5], 'jp', jp, 'name', ARGV[3], 'keep', ARGV[4], 'def', ARGV[5],
  'created', now_s, 'steps', str(n), 'left', str(n))
local seq = redis.call('INCRBY', KEYS[3], n) - n
local ready = {}
local waiting = {}
for i = 0, n - 1 do
  local b = 6 + i * 7
  local step = ARGV[b]
  local id = jp .. step
  local parents = tonumber(ARGV[b + 4])
  local state = 'pending'
  if parents > 0 then state = 'waiting' end
  job_set(prefix, id, 'data', ARGV[b + 1], 'state', state, 'attempt', '0',
    'max', ARGV[b + 3], 'priority', ARGV[b + 2], 'fence', '0', 'created', now_s,
    'due', now_s, 'flow', KEYS[5], 'step', step, 'wait', ARGV[b + 4], 'policy', ARGV[b + 5])
  if ARGV[b + 6] ~= '' then redis.call('HSET', KEYS[5], 'c:' .. step, ARGV[b + 6]) end
  if parents > 0 then
    waiting[#waiting + 1] = now_s
    waiting[#waiting + 1] = id
  else
    ready[#ready + 1] = pending_score(tonumber(ARGV[b + 2]), seq + i + 1)
    ready[#ready + 1] = id
  end
  event(state, id)
end
if #waiting > 0 then zadd_many(KEYS[2], waiting) end
if #ready > 0 then
  zadd_many(KEYS[1], ready)
  wake(KEYS[4])
end
flow_trim(prefix, now, 10)
-- An earlier workflow with this id is gone (no hash): its retention deadline goes with it.
redis.call('ZREM', KEYS[7], flow_id_of(jp))
redis.call('ZADD', KEYS[6], now, flow_id_of(jp))
count(prefix, now, 'e', n)
publish(prefix)
return 'created'
