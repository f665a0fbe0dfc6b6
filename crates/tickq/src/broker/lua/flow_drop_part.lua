#!lua flags=allow-oom
-- flow_drop_part: delete a workflow part whose home never came: a submit stopped between its
--   parts and its home (a crash, or the home refused) leaves steps waiting for a `ready`
--   that nothing will send. broker/flows.rs (`drop_orphan_parts`, run by the janitor) calls
--   this for a part listed in `flow-parts` long after its creation, once it checked that the
--   home does not exist.
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] the part (workflow hash)  KEYS[2] waiting  KEYS[3] cancelled  KEYS[4] flow-parts
-- ARGV[1] job key prefix  ARGV[2] workflow id
-- The part leaves `flow-parts` in every case. A part that got ready meanwhile is kept. Else its
--   step jobs (waiting, or cancelled by hand) and its hash are deleted.
-- Returns {'dropped', step jobs deleted}, {'ready', 0} (kept) or {'gone', 0} (no part).
-- Idempotent: yes; a second call finds no part and answers 'gone'.
local prefix = ARGV[1]
redis.call('ZREM', KEYS[4], ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'home', 'ready', 'jp', 'here')
if not f[1] then return {'gone', 0} end -- no hash, or a home (only parts name one)
if f[2] then return {'ready', 0} end
local from = {waiting = KEYS[2], cancelled = KEYS[3]}
local deleted = 0
for step in string.gmatch(f[4] or '', '%S+') do
  local id = f[3] .. step
  local job = job_get(prefix, id, {'state', 'flow'})
  if job[2] == KEYS[1] and from[job[1]] then
    redis.call('ZREM', from[job[1]], id)
    job_del(prefix, id)
    event('deleted', id)
    deleted = deleted + 1
  end
end
redis.call('DEL', KEYS[1])
publish(prefix)
return {'dropped', deleted}
