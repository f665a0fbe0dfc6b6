-- flow_submit: create a workflow's hash and its steps' jobs in one queue, all or nothing: the
--   whole workflow when every step is in its queue, else the part in one queue (ARGV[6] names
--   the home) or, last, the home (docs/workflows.md, "Steps in other queues").
-- KEYS[1] pending  KEYS[2] waiting  KEYS[3] wake stream  KEYS[4] the workflow hash
-- KEYS[5] the queue's workflow index (flows)  KEYS[6] its retention deadlines (flow-ends)
-- ARGV[1] job key prefix  ARGV[2] step job id prefix (`flow:<id>:`)  ARGV[3] name
-- ARGV[4] keep ms (after the last step ended)  ARGV[5] the definition (JSON, for views; the
--   home only)  ARGV[6] the home queue ('' in the home)  ARGV[7] the number of steps of the
--   whole workflow  ARGV[8] (home) the other queues with steps, space separated
-- ARGV[9] K, then 2 per step of another queue with children in this one (K of them): its
--   step id, those children (space separated)
-- then 8 per step of this queue: step id, data (envelope), priority, max attempts, parent count,
--   policy, children in this queue, the other queues to tell of its end (space separated)
-- In the home, steps without parents are pending at once; the others are `waiting` (in
--   KEYS[2], which no claim reads) with `wait` = their parent count, until `flow_settle_steps`
--   (prelude.lua) settles them. In a part every step is waiting: the home, created last, tells
--   each part it is ready (an outbox entry, `flow_settle`), and only then does any step there
--   start, so a workflow whose home was never created runs nothing. The caller checked the
--   graph (known ids, no cycle, counts that match the edges).
-- The home joins the queue's workflow index (`flows`, by creation; prelude.lua); a part joins
--   `flow-parts` (built from the job prefix) until the home tells it that it is ready, so
--   that the janitor finds a part whose home never came (broker/flows.rs).
-- Returns 'created', 'exists' (a workflow hash with this id is there: nothing changed), or
--   'conflict:<job id>' (a job with a step's id is there: nothing changed).
-- Idempotent: yes; a repeated call answers 'exists' and creates nothing twice.
local prefix = ARGV[1]
local jp = ARGV[2]
local home = ARGV[6]
if redis.call('EXISTS', KEYS[4]) == 1 then return 'exists' end
local per = 8
local links = tonumber(ARGV[9])
local first = 10 + 2 * links
local n = (#ARGV - first + 1) / per
for i = 0, n - 1 do
  local id = jp .. ARGV[first + i * per]
  if job_exists(prefix, id) then return 'conflict:' .. id end
end
local now = now_ms()
local now_s = str(now)
if home == '' then
  redis.call('HSET', KEYS[4], 'jp', jp, 'name', ARGV[3], 'keep', ARGV[4], 'def', ARGV[5],
    'created', now_s, 'steps', ARGV[7], 'left', ARGV[7])
else
  local here = {}
  for i = 0, n - 1 do here[#here + 1] = ARGV[first + i * per] end
  redis.call('HSET', KEYS[4], 'jp', jp, 'name', ARGV[3], 'keep', ARGV[4], 'home', home,
    'created', now_s, 'steps', str(n), 'left', str(n), 'here', table.concat(here, ' '))
  redis.call('ZADD', queue_key(prefix, 'flow-parts'), now, flow_id_of(jp))
end
local ready, ready_prio = {}, {}
local waiting = {}
for i = 0, n - 1 do
  local b = first + i * per
  local step = ARGV[b]
  local id = jp .. step
  local parents = tonumber(ARGV[b + 4])
  local state = 'pending'
  if parents > 0 or home ~= '' then state = 'waiting' end
  job_create(prefix, id, ARGV[b + 1], state, ARGV[b + 3], ARGV[b + 2], now_s, now_s,
    'flow', KEYS[4], 'step', step, 'wait', ARGV[b + 4], 'policy', ARGV[b + 5])
  if ARGV[b + 6] ~= '' then redis.call('HSET', KEYS[4], 'c:' .. step, ARGV[b + 6]) end
  if ARGV[b + 7] ~= '' then redis.call('HSET', KEYS[4], 'o:' .. step, ARGV[b + 7]) end
  if state == 'waiting' then
    waiting[#waiting + 1] = now_s
    waiting[#waiting + 1] = id
  else
    ready[#ready + 1] = id
    ready_prio[#ready] = ARGV[b + 2]
  end
  event(state, id)
end
for i = 0, links - 1 do
  redis.call('HSET', KEYS[4], 'c:' .. ARGV[10 + 2 * i], ARGV[11 + 2 * i])
end
if #waiting > 0 then zadd_many(KEYS[2], waiting) end
if #ready > 0 then
  pending_push(prefix, ready, ready_prio)
  wake(KEYS[3])
end
if home == '' then
  for q in string.gmatch(ARGV[8], '%S+') do
    flow_tell(prefix, flow_id_of(jp), '^', q, 1, 'ready', '')
  end
  flow_trim(prefix, now, 10)
  -- An earlier workflow with this id is gone (no hash): its retention deadline goes with it.
  redis.call('ZREM', KEYS[6], flow_id_of(jp))
  redis.call('ZADD', KEYS[5], now, flow_id_of(jp))
end
count(prefix, now, 'e', n)
publish(prefix)
return 'created'
