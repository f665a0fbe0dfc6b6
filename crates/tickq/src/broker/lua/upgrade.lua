#!lua flags=allow-oom
-- upgrade: move the jobs a queue holds in layout 4 (a hash per job, `<prefix><id>`, with every
-- field, `data` included) to layout 5 (prelude.lua, "Job records"): the payload record into
-- the queue's `jobs` hash, attempt/group/unique/flow/step into the sparse hashes, and what is
-- left in the job's hash as its notes (without a `state` of pending, without a TTL: notes must
-- not expire before their payload; the janitor deletes finished jobs by their index's age).
-- Runs when Redis is full (flags=allow-oom): a queue must be readable before it can drain.
-- KEYS[1] layout marker (present: the queue is done, nothing to move)
-- ARGV[1] job key prefix  ARGV[2] what to do: 'bands' (the pending priorities, after moving
--   a queue older than lists to them), an index ('pending:<band>', 'scheduled', 'retry',
--   'active', 'waiting', 'completed', 'dead', 'cancelled') or '' (done: set the marker)
-- ARGV[3] first position in the index  ARGV[4] how many ids to look at
-- broker/upgrade.rs walks every index of the queue in chunks, then sets the marker; a job in
--   no index (an orphan no script reaches) is left as it is.
-- Returns {-1} when the marker is set already, {0, band...} for 'bands', {seen, moved} for a
--   chunk of an index (seen < asked: the index ends there), {0} for ''.
-- Idempotent: yes; a job already moved has no `data` in its hash and is left alone, and two
--   processes walking the same queue at once move each job once.
local prefix = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
local what = ARGV[2]
if what == '' then
  redis.call('SET', KEYS[1], '5')
  return {0}
end
if what == 'bands' then
  pending_upgrade(prefix)
  local out = {0}
  for _, band in ipairs(redis.call('ZRANGE', queue_key(prefix, 'pending'), 0, -1)) do
    out[#out + 1] = band
  end
  return out
end
local first = tonumber(ARGV[3])
local last = first + tonumber(ARGV[4]) - 1
local index = queue_key(prefix, what)
local ids
if string.sub(what, 1, 8) == 'pending:' then
  ids = redis.call('LRANGE', index, first, last)
else
  ids = redis.call('ZRANGE', index, first, last)
end
local moved = 0
for _, id in ipairs(ids) do
  local key = notes_key(prefix, id)
  if redis.call('HEXISTS', key, 'data') == 1 then
    moved = moved + 1
    local all = redis.call('HGETALL', key)
    local f = {}
    for i = 1, #all, 2 do f[all[i]] = all[i + 1] end
    redis.call('HSET', queue_key(prefix, 'jobs'), id, payload_join(f.created or '0',
      f.due or f.created or '0', f.max or '1', f.priority or '0', f.data))
    local drop = {'data', 'created', 'due', 'max', 'priority', 'attempt', 'group', 'unique',
      'flow', 'step'}
    if f.attempt and f.attempt ~= '0' then
      redis.call('HSET', queue_key(prefix, 'attempts'), id, f.attempt)
    end
    if f.group then redis.call('HSET', queue_key(prefix, 'groups'), id, f.group) end
    if f.unique or f.flow or f.step then
      redis.call('HSET', queue_key(prefix, 'ends'), id,
        (f.unique or '') .. '\n' .. (f.flow or '') .. '\n' .. (f.step or ''))
    end
    if f.state == 'pending' then drop[#drop + 1] = 'state' end
    if f.fence == '0' then drop[#drop + 1] = 'fence' end
    redis.call('HDEL', key, unpack(drop))
    redis.call('PERSIST', key)
  end
end
return {#ids, moved}
