#!lua flags=allow-oom
-- flow_settle: apply outbox entries from other queues (relayed by broker/flows.rs) to this
-- queue's hash of their workflows: the home's or a part (prelude.lua, "Workflows").
-- KEYS[1] this queue's pending (every key touched is in this queue's slot)
-- ARGV[1] job key prefix; then 2 per entry: its outbox field `<workflow id> <step> <queue>`
--   and value `<version> <outcome> <result>`, as `flow_tell` wrote them.
-- An entry applies only when its version is newer than the one held for its step
--   (`v:<step>`), and is then held. Outcomes:
--   `ready` (step `^`, from the home once it was created): this part's steps whose parents
--     all ended (those without any, at first) are released; until then none is. Ends of its
--     steps recorded before (which found no home to tell) are told to the home again.
--   `open` (`flow retry` started the step over): its copied end and result are forgotten; the
--     home counts it as not ended again (and the workflow as not finished).
--   an end (completed, skipped, dead, cancelled): its end and result are copied (the result is
--     there before any child here can start), the home counts it, and its waiting children
--     here are settled by their policies, in this call (`flow_settle_steps`).
--   An entry for a workflow with no hash here (its retention ran out) is dropped.
-- Returns the number of entries applied.
-- Idempotent: yes; an entry applied once is not newer than itself, so a repeated relay (a
--   crash between this script and the outbox removal, or two relays at once) changes nothing.
local prefix = ARGV[1]
local now = now_ms()
local now_s = str(now)
local applied = 0

-- The home's accounting of a step of another queue that ended (`out`) or started over
-- (`out` = nil); `old` is the end it held.
local function count_remote(fk, flow_id, old, out)
  if old then
    redis.call('HINCRBY', fk, old, -1)
  end
  local left
  if out and not old then
    left = redis.call('HINCRBY', fk, 'left', -1)
  elseif not out and old then
    left = redis.call('HINCRBY', fk, 'left', 1)
  end
  if out then redis.call('HINCRBY', fk, out, 1) end
  if left == 0 then
    local keep = redis.call('HGET', fk, 'keep') or '86400000'
    redis.call('HSET', fk, 'finished', now_s)
    redis.call('PEXPIRE', fk, keep)
    redis.call('ZADD', queue_key(prefix, 'flow-ends'), now + tonumber(keep), flow_id)
  elseif left and left > 0 and not out then
    redis.call('HDEL', fk, 'finished')
    redis.call('PERSIST', fk)
    redis.call('ZREM', queue_key(prefix, 'flow-ends'), flow_id)
  end
end

-- The workflow is ready: release this part's waiting steps that wait for nobody. A step of
-- it that ended before (cancelled by hand while the home did not exist yet) told a home that
-- was not there: it tells the home again.
local function ready(fk, jp)
  redis.call('HSET', fk, 'ready', '1')
  redis.call('ZREM', queue_key(prefix, 'flow-parts'), flow_id_of(jp))
  local f = redis.call('HMGET', fk, 'here', 'home')
  local here = f[1] or ''
  local released = {}
  for s in string.gmatch(here, '%S+') do
    local e = redis.call('HMGET', fk, 'e:' .. s, 'r:' .. s, 'g:' .. s)
    if e[1] and f[2] then
      local version = 2 * (tonumber(e[3]) or 0) + 1
      flow_tell(prefix, flow_id_of(jp), s, f[2], version, e[1], e[2] or '')
    end
    local id = jp .. s
    local f = job_get(prefix, id, {'state', 'wait'})
    if f[1] == 'waiting' and (tonumber(f[2]) or 0) <= 0 then
      released[#released + 1] = id
    end
  end
  release_steps(prefix, released, now_s)
end

for i = 2, #ARGV, 2 do
  local flow_id, step = string.match(ARGV[i], '^(%S+) (%S+) ')
  local version, out, res = string.match(ARGV[i + 1], '^(%d+) (%S+) (.*)$')
  if flow_id and version then
    local fk = queue_key(prefix, 'flow:' .. flow_id)
    version = tonumber(version)
    local f = redis.call('HMGET', fk, 'jp', 'home', 'v:' .. step, 'e:' .. step)
    local is_home = f[1] and not f[2]
    if f[1] and version > (tonumber(f[3]) or -1) then
      applied = applied + 1
      redis.call('HSET', fk, 'v:' .. step, str(version))
      if out == 'ready' then
        ready(fk, f[1])
      elseif out == 'open' then
        if f[4] then
          redis.call('HDEL', fk, 'e:' .. step, 'r:' .. step)
          if is_home then count_remote(fk, flow_id, f[4], nil) end
        end
      else
        redis.call('HSET', fk, 'e:' .. step, out)
        if res ~= '' then
          redis.call('HSET', fk, 'r:' .. step, res)
        else
          redis.call('HDEL', fk, 'r:' .. step)
        end
        if is_home then count_remote(fk, flow_id, f[4] or nil, out) end
        flow_settle_steps(prefix, fk, {{step, out, res, true}}, now)
      end
    end
  end
end
publish(prefix)
return applied
