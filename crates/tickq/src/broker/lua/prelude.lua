-- prelude: helpers shared by every script (scripts.rs puts the definitions a script names,
-- and those they use, before it: `prelude_for`).
-- Scripts never invent key names: fixed keys come in KEYS, job keys are ARGV[1] (the queue's
-- job key prefix, built by keys.rs) followed by the job id, and a job's unique-key reservation
-- is named in its hash (field `unique`, the full key built by keys.rs at enqueue).

-- Redis TIME in microseconds: the only clock that decides "due" and "expired". Read once per
-- script call (a script runs atomically: nothing happens between two readings anyway), so the
-- clock costs one `TIME` however many helpers ask.
local clock_read = nil
local function clock_us()
  if not clock_read then
    local t = redis.call('TIME')
    clock_read = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return clock_read
end

-- Redis TIME in milliseconds.
local function now_ms()
  return math.floor(clock_us() / 1000)
end

-- A whole number as a string. Redis 7.0 formats every Lua number passed to redis.call with
-- "%.17g" (about a microsecond each), so hot scripts format a value once and pass strings.
-- Exact for integers below 2^53 (%.14g would round 15-digit values).
local function str(n)
  return string.format('%d', n)
end

-- Reserve `n` fencing tokens from the counter at `key`; returns the one before the first.
-- The tokens are greater than every token the counter issued before AND than Redis' clock in
-- microseconds. The clock is what keeps a token from being issued twice when a primary
-- fails over after acknowledging writes its replica never got (asynchronous replication; a
-- crash under appendfsync everysec): the promoted server's counter may lag the lost claims,
-- but its clock has moved past the moment they were made, unless the two servers' clocks
-- differ by more than the failover took (seconds). Exact below 2^53 (Lua numbers); the clock
-- in microseconds is about 2^51 today.
local function reserve_fences(key, n)
  local clock = clock_us()
  local last = tonumber(redis.call('GET', key)) or 0
  if last < clock then last = clock end
  redis.call('SET', key, str(last + n))
  return last
end

-- Live events (docs/api.md, "Live updates"): a script collects the state changes it makes
-- with `event` and sends them in ONE message with `publish` at its end, so watching costs one
-- call per script call, not per job. Pub/sub only lets watchers see changes early; nothing
-- depends on a message arriving. The channel is the queue's own, `tickq:{<queue>}:events` (its
-- slot on a Cluster); a message is the queue's name, then one `state id` line per change (at
-- most EVENTS_MAX), then `+ N` for the changes left out.
local EVENTS_MAX = 100
local events = {}
local events_left_out = 0
local function event(state, id)
  if #events < EVENTS_MAX then
    events[#events + 1] = state .. ' ' .. id
  else
    events_left_out = events_left_out + 1
  end
end
local function publish(prefix)
  if #events == 0 then return end
  -- The queue's name and channel, from its job key prefix `tickq:{<queue>}:job:`.
  local msg = string.sub(prefix, 8, -7) .. '\n' .. table.concat(events, '\n')
  if events_left_out > 0 then msg = msg .. '\n+ ' .. events_left_out end
  redis.call('PUBLISH', string.sub(prefix, 1, -5) .. 'events', msg)
end

-- Per-minute history (docs/redis-keys.md): a hash per queue and minute,
-- `tickq:{<queue>}:history:<minutes since the epoch>`, kept 8 days. Its name is built from the
-- job key prefix (same hash tag) and Redis' clock. Fields: e enqueued, p processed, f failed,
-- r retried, d dead, rc/rs/rm run count, run ms sum, run ms max, b1..b6 run-time buckets
-- (<= 10 ms, 100 ms, 1 s, 10 s, 60 s, more).
local HISTORY_KEEP_MS = 691200000
local RUN_EDGES = {10, 100, 1000, 10000, 60000}
local function history_key(prefix, now)
  return string.sub(prefix, 1, -5) .. 'history:' .. str(math.floor(now / 60000))
end
local function count(prefix, now, field, n)
  if n == 0 then return end
  local key = history_key(prefix, now)
  -- The first write of the minute (of this field) sets the expiry.
  if redis.call('HINCRBY', key, field, n) == n then
    redis.call('PEXPIRE', key, HISTORY_KEEP_MS)
  end
end
-- Run times (ms) of attempts that ended now.
local function count_runs(prefix, now, runs)
  if #runs == 0 then return end
  local key = history_key(prefix, now)
  local buckets, sum, max = {0, 0, 0, 0, 0, 0}, 0, 0
  for _, ms in ipairs(runs) do
    local b = 6
    for i, edge in ipairs(RUN_EDGES) do
      if ms <= edge then b = i break end
    end
    buckets[b] = buckets[b] + 1
    sum = sum + ms
    if ms > max then max = ms end
  end
  if redis.call('HINCRBY', key, 'rc', #runs) == #runs then
    redis.call('PEXPIRE', key, HISTORY_KEEP_MS)
  end
  -- A sum or max of 0 is what an absent field reads as: two calls fewer when every run took
  -- under a millisecond.
  if sum > 0 then redis.call('HINCRBY', key, 'rs', str(sum)) end
  for i = 1, 6 do
    if buckets[i] > 0 then redis.call('HINCRBY', key, 'b' .. i, buckets[i]) end
  end
  if max > 0 and max > (tonumber(redis.call('HGET', key, 'rm')) or -1) then
    redis.call('HSET', key, 'rm', str(max))
  end
end
-- How long an attempt that started at `started` (ms, as stored) ran until `now`.
local function run_ms(started, now)
  local s = tonumber(started)
  if not s then return nil end
  return math.max(now - s, 0)
end

-- Call `f(first, last)` on each chunk of `list` small enough for Lua's unpack limit (4,000
-- items: an even number, so score/member and field/value pairs stay whole).
local function chunks(list, f)
  for i = 1, #list, 4000 do f(i, math.min(i + 3999, #list)) end
end

-- ZADD with many score/member pairs.
local function zadd_many(key, pairs)
  chunks(pairs, function(a, b) redis.call('ZADD', key, unpack(pairs, a, b)) end)
end

-- HSET with many field/value pairs.
local function hset_many(key, pairs)
  chunks(pairs, function(a, b) redis.call('HSET', key, unpack(pairs, a, b)) end)
end

-- HMGET of many fields: the values in the order of `fields`.
local function hmget_many(key, fields)
  local out = {}
  chunks(fields, function(a, b)
    for _, v in ipairs(redis.call('HMGET', key, unpack(fields, a, b))) do out[#out + 1] = v end
  end)
  return out
end

-- HDEL of many fields.
local function hdel_many(key, fields)
  chunks(fields, function(a, b) redis.call('HDEL', key, unpack(fields, a, b)) end)
end

-- DEL of many keys (of one slot).
local function del_many(keys)
  chunks(keys, function(a, b) redis.call('DEL', unpack(keys, a, b)) end)
end

-- ZREM with many members.
local function zrem_many(key, members)
  chunks(members, function(a, b) redis.call('ZREM', key, unpack(members, a, b)) end)
end

-- A key of the queue, built from its job key prefix `tickq:{<queue>}:job:` (same hash tag);
-- keys.rs builds the same names (QueueKeys::waiting, ::pending, ...).
local function queue_key(prefix, name)
  return string.sub(prefix, 1, -5) .. name
end

-- Job records. A job's record is a set of named fields (data, state, attempt, max, priority,
-- fence, created, due, started, finished, lease, owner, error, result, unique, group, cancel,
-- progress, and a workflow step's flow, step, wait, policy, parent_failed, skipped; see
-- docs/redis-keys.md for where it is stored). Scripts reach records ONLY through these
-- functions, and Rust only through broker/record.rs, so the storage layout is decided in
-- those two places alone. `prefix` is the queue's job key prefix (ARGV[1] of every script).
-- A field that is not set reads as false, like a missing hash field.
--
-- Where the fields live (layout 5, "the payload apart"): a plain job is one field of a
-- per-queue hash and one list entry; it has no key of its own.
-- - `jobs`: id -> the PAYLOAD record, "<created> <due> <max> <priority>\n<data>", written
--   once at creation and never changed. Its presence is the job's existence.
-- - `running`: id -> "fence started attempt owner" of each active job (its presence IS state
--   active), written by claim in one HSET per batch. A job that has a unique key or is a
--   workflow step carries them after it, "\n<unique>\n<flow>\n<step>" (its `ends` entry), for
--   ack to read without the record.
-- - `acked`: id -> "finished fence started attempt owner" of each job completed by ack (its
--   presence IS state completed), written in one HSET per batch.
-- - the lease deadline of an active job is its score in `active`.
-- - sparse per-queue hashes, with an entry only for a job that has the fact, read by claim
--   with one call per batch when they exist: `attempts` (attempt count of a job that ran
--   before and is not running), `groups` (a cron tick's group), `dues` (a due time changed
--   after creation: overrides the payload's), `ends` ("<unique>\n<flow>\n<step>").
-- - everything else (a state other than pending, error, result, cancel, progress, the
--   settled facts of a past run, a step's wait/policy/...) in the job's NOTES hash,
--   `<prefix><id>`, which exists only while the job has such a fact.
-- A job's state: a `running` entry -> active; an `acked` entry -> completed; else the notes'
-- `state`; else (its payload exists) pending. job_get overlays the facts; job_set moves them
-- into their homes when it changes the job's state (settle_facts), so no script has to know.

-- Where each field lives: 'payload' (never changed), a sparse hash's name, 'ends' (position
-- in its value) or, for every other name, the notes.
local HOMES = {data = 'payload', created = 'payload', max = 'payload', priority = 'payload',
  due = 'dues', attempt = 'attempts', group = 'groups', unique = 'ends', flow = 'ends',
  step = 'ends'}
local ENDS_AT = {unique = 1, flow = 2, step = 3}

-- The facts a run hash holds, in order, and those of an acked entry.
local RUN_FACTS = {'fence', 'started', 'attempt', 'owner'}
local ACKED_FACTS = {'finished', 'fence', 'started', 'attempt', 'owner'}
local OVERLAID = {fence = true, started = true, attempt = true, owner = true, finished = true}

-- A job's notes key.
local function notes_key(prefix, id)
  return prefix .. id
end

-- A payload record's header fields: created, due, max, priority (the envelope not copied).
local function payload_header(rec)
  return string.match(rec, '^(%S*) (%S*) (%S*) (%S*)\n')
end

-- A payload record split into its fields (name -> value).
local function payload_split(rec)
  local nl = string.find(rec, '\n', 1, true) or (#rec + 1)
  local created, due, max, priority = payload_header(string.sub(rec, 1, nl - 1) .. '\n')
  return {created = created, due = due, max = max, priority = priority,
    data = string.sub(rec, nl + 1)}
end

-- A payload record from its fields.
local function payload_join(created, due, max, priority, data)
  return created .. ' ' .. due .. ' ' .. max .. ' ' .. priority .. '\n' .. data
end

-- A `running` value's head, "fence started attempt owner", and its tail (the job's `ends`
-- entry), if any.
local function run_split(run)
  local nl = string.find(run, '\n', 1, true)
  if not nl then return run, nil end
  return string.sub(run, 1, nl - 1), string.sub(run, nl + 1)
end

-- A `running` value split into its facts (name -> value) and the tail after the head, if any.
local function run_facts(run)
  local head, tail = run_split(run)
  local fence, started, attempt, owner = string.match(head, '^(%S+) (%S+) (%S+) (.*)$')
  return {fence = fence, started = started, attempt = attempt, owner = owner}, tail
end

-- An `acked` value split into its facts.
local function acked_facts(acked)
  local finished, fence, started, attempt, owner =
    string.match(acked, '^(%S+) (%S+) (%S+) (%S+) (.*)$')
  return {finished = finished, fence = fence, started = started, attempt = attempt,
    owner = owner}
end

-- The unique key, workflow key and step in a `running` value's tail or an `ends` entry
-- (false when none).
local function run_ends(tail)
  if not tail then return false, false, false end
  local unique, flow, step = string.match(tail, '^(.-)\n(.-)\n(.*)$')
  return unique ~= '' and unique, flow ~= '' and flow, step ~= '' and step
end

-- The facts that job `id` has in the per-queue hashes, and the state they mean: the running
-- facts and 'active', the acked ones and 'completed', or nil.
local function job_facts(prefix, id)
  local run = redis.call('HGET', queue_key(prefix, 'running'), id)
  if run then return run_facts(run), 'active' end
  local acked = redis.call('HGET', queue_key(prefix, 'acked'), id)
  if acked then return acked_facts(acked), 'completed' end
  return nil, nil
end

-- The values of `fields` of job `id`; `idle`: the job is known to have no running or acked
-- facts (a new job, or one in the pending, a due or the waiting index).
local function job_read(prefix, id, fields, idle)
  local values = {}
  local payload, facts, state = nil, nil, nil
  local facts_read = idle
  local function get_payload()
    if payload == nil then
      local rec = redis.call('HGET', queue_key(prefix, 'jobs'), id)
      payload = rec and payload_split(rec) or false
    end
    return payload
  end
  local ends = nil
  local notes, notes_at = {}, {}
  for i, name in ipairs(fields) do
    values[i] = false
    local home = HOMES[name]
    if name == 'state' or name == 'lease' or OVERLAID[name] then
      if not facts_read then
        facts_read = true
        -- No payload: no job, whatever else is left.
        if get_payload() then facts, state = job_facts(prefix, id) end
      end
    end
    if name == 'state' and state then
      values[i] = state
    elseif name == 'lease' and state == 'active' then
      values[i] = redis.call('ZSCORE', queue_key(prefix, 'active'), id)
    elseif facts and facts[name] then
      values[i] = facts[name]
    elseif home == 'payload' then
      values[i] = get_payload() and payload[name]
    elseif home == 'ends' then
      if ends == nil then
        ends = {run_ends(redis.call('HGET', queue_key(prefix, 'ends'), id) or nil)}
      end
      values[i] = ends[ENDS_AT[name]]
    elseif home then
      values[i] = redis.call('HGET', queue_key(prefix, home), id)
      if not values[i] and name == 'due' then values[i] = get_payload() and payload.due end
    else
      notes[#notes + 1] = name
      notes_at[#notes] = i
    end
  end
  if #notes > 0 then
    local got = redis.call('HMGET', notes_key(prefix, id), unpack(notes))
    for k, i in ipairs(notes_at) do values[i] = got[k] end
  end
  for i, name in ipairs(fields) do
    if name == 'state' and not values[i] and get_payload() then values[i] = 'pending' end
  end
  return values
end

-- The values of `fields` (a list of names) of job `id`, in that order; all false when the job
-- does not exist (but for what another job left under its id, which no script reads then).
local function job_get(prefix, id, fields)
  return job_read(prefix, id, fields, false)
end

-- job_get for a job known to have no running or acked facts (a new job, or one in the pending,
-- a due or the waiting index).
local function job_get_idle(prefix, id, fields)
  return job_read(prefix, id, fields, true)
end

-- Whether job `id` exists (has its payload).
local function job_exists(prefix, id)
  return redis.call('HEXISTS', queue_key(prefix, 'jobs'), id) == 1
end

-- Write name, value pairs (`args`) of job `id` to their homes; a value of false clears the
-- field. `state` 'pending' is stored as no state, `attempt` '0' as no entry.
local function job_write(prefix, id, args)
  local notes_set, notes_del = {}, {}
  local ends, payload = nil, nil
  for i = 1, #args, 2 do
    local name, value = args[i], args[i + 1]
    local home = HOMES[name]
    -- Defaults are not stored: pending is no state, attempt 0 no `attempts` entry.
    if (name == 'state' and value == 'pending') or (name == 'attempt' and value == '0') then
      value = false
    end
    if home == 'payload' then
      if not payload then
        local rec = redis.call('HGET', queue_key(prefix, 'jobs'), id)
        payload = rec and payload_split(rec) or {created = '0', due = '0', max = '1',
          priority = '0', data = ''}
      end
      payload[name] = value or (name == 'data' and '' or '0')
    elseif home == 'ends' then
      if not ends then
        ends = {run_ends(redis.call('HGET', queue_key(prefix, 'ends'), id) or nil)}
      end
      ends[ENDS_AT[name]] = value
    elseif home then
      if value then
        redis.call('HSET', queue_key(prefix, home), id, value)
      else
        redis.call('HDEL', queue_key(prefix, home), id)
      end
    elseif value then
      notes_set[#notes_set + 1] = name
      notes_set[#notes_set + 1] = value
    else
      notes_del[#notes_del + 1] = name
    end
  end
  if #notes_set > 0 then redis.call('HSET', notes_key(prefix, id), unpack(notes_set)) end
  if #notes_del > 0 then redis.call('HDEL', notes_key(prefix, id), unpack(notes_del)) end
  if ends then
    local key = queue_key(prefix, 'ends')
    if ends[1] or ends[2] or ends[3] then
      redis.call('HSET', key, id,
        (ends[1] or '') .. '\n' .. (ends[2] or '') .. '\n' .. (ends[3] or ''))
    else
      redis.call('HDEL', key, id)
    end
  end
  if payload then
    redis.call('HSET', queue_key(prefix, 'jobs'), id, payload_join(payload.created,
      payload.due, payload.max, payload.priority, payload.data))
  end
end

-- Move job `id`'s running or acked facts into their homes (its state is about to change).
local function settle_facts(prefix, id)
  local facts, state = job_facts(prefix, id)
  if not facts then return end
  local names = RUN_FACTS
  if state == 'completed' then names = ACKED_FACTS end
  local args = {'state', state}
  for _, name in ipairs(names) do
    args[#args + 1] = name
    args[#args + 1] = facts[name]
  end
  job_write(prefix, id, args)
  redis.call('HDEL', queue_key(prefix, state == 'active' and 'running' or 'acked'), id)
end

-- Set fields of job `id`: name, value, name, value, ... Setting `state` first moves the job's
-- running or acked facts into their homes (settle_facts).
local function job_set(prefix, id, ...)
  local args = {...}
  for i = 1, #args, 2 do
    if args[i] == 'state' then settle_facts(prefix, id) break end
  end
  job_write(prefix, id, args)
end

-- job_set for a job known to have no running or acked facts: a new job, or one in a due or
-- waiting index (promote, release_steps), where looking for them would be wasted calls.
local function job_set_idle(prefix, id, ...)
  job_write(prefix, id, {...})
end

-- Create job `id` (a new job) with its envelope, first state, attempts allowed, priority,
-- creation and due times (Redis ms, as strings), then any other `...` name, value pairs: its
-- payload, and notes only for a state other than pending or a rare fact.
-- broker/enqueue.rs writes the same for bulk enqueues (`plain_transaction`).
local function job_create(prefix, id, data, state, max, priority, created, due, ...)
  redis.call('HSET', queue_key(prefix, 'jobs'), id,
    payload_join(created, due, max, priority, data))
  local args = {...}
  if state ~= 'pending' then
    args[#args + 1] = 'state'
    args[#args + 1] = state
  end
  if #args > 0 then job_write(prefix, id, args) end
end

-- Clear fields of job `id`: name, name, ...
local function job_unset(prefix, id, ...)
  local args = {}
  for _, name in ipairs({...}) do
    args[#args + 1] = name
    args[#args + 1] = false
  end
  job_write(prefix, id, args)
end

-- Add `n` to a whole-number field of job `id` (not of the payload); returns the new value.
local function job_incr(prefix, id, field, n)
  local home = HOMES[field]
  if home then return redis.call('HINCRBY', queue_key(prefix, home), id, n) end
  return redis.call('HINCRBY', notes_key(prefix, id), field, n)
end

-- The per-queue hashes that may hold an entry of a job.
local JOB_HASHES = {'jobs', 'running', 'acked', 'attempts', 'groups', 'dues', 'ends'}

-- Delete job `id`: its payload, notes and facts.
local function job_del(prefix, id)
  redis.call('DEL', notes_key(prefix, id))
  for _, name in ipairs(JOB_HASHES) do redis.call('HDEL', queue_key(prefix, name), id) end
end

-- job_del for many finished jobs (none active), a few calls for all of them (cap_index evicts
-- one per ack once an index is full); `acked`: whether they may have acked facts.
local function jobs_del(prefix, ids, acked)
  local notes = {}
  for i, id in ipairs(ids) do notes[i] = notes_key(prefix, id) end
  del_many(notes)
  for _, name in ipairs(JOB_HASHES) do
    if name ~= 'running' and (acked or name ~= 'acked') then
      hdel_many(queue_key(prefix, name), ids)
    end
  end
end

-- The entries of `ids` in the queue's sparse hash `name` (`attempts`, `groups`, `dues`,
-- `ends`), in the order of `ids` (false: none), or nil when the hash does not exist: one
-- EXISTS, and the HMGET only when it does (claim reads a batch's rare facts this way).
local function sparse_get(prefix, name, ids)
  local key = queue_key(prefix, name)
  if redis.call('EXISTS', key) == 0 then return nil end
  return hmget_many(key, ids)
end

-- Pending jobs (docs/redis-keys.md, "Pending"): a list per priority, `pending:<priority>`,
-- FIFO (RPUSH at the back, LPOP from the front), and the sorted set `pending` of the
-- priorities that have pending jobs (member the priority as a string, score minus it, so
-- ZRANGE 0 -1 lists the highest first). A priority is in the set exactly when its list is not
-- empty (Redis deletes an empty list). A list entry costs Redis about 40 bytes and a push or
-- pop a fraction of a sorted-set insert or delete (docs/benchmarks.md). Only the pending_*
-- functions below touch them.
local PRIORITY_MAX = 1000

-- A priority as a band name: the record's text ('5', or false for 0) normalised.
local function band_of(priority)
  return str(tonumber(priority) or 0)
end
local function pending_band(prefix, band)
  return queue_key(prefix, 'pending:' .. band)
end

-- RPUSH (LPUSH when `front`) of many values; answers the list's length after.
local function push_many(front, key, values)
  local len = 0
  chunks(values, function(a, b)
    if front then
      len = redis.call('LPUSH', key, unpack(values, a, b))
    else
      len = redis.call('RPUSH', key, unpack(values, a, b))
    end
  end)
  return len
end

-- Ids grouped by band, each group in the order given; `order` lists the bands as met.
local function by_band(ids, priorities)
  local groups, order = {}, {}
  for i, id in ipairs(ids) do
    local band = band_of(priorities[i])
    local g = groups[band]
    if not g then
      g = {}
      groups[band] = g
      order[#order + 1] = band
    end
    g[#g + 1] = id
  end
  return groups, order
end

-- Add jobs to their priorities' lists, at the back (FIFO) or, with `front`, at the front in
-- the order given (LPUSH in reverse): one push per priority present, and the priority into the
-- set only when its list was empty before. `priorities[i]` is job `ids[i]`'s priority as its
-- record holds it.
local function pending_add(prefix, ids, priorities, front)
  local groups, order = by_band(ids, priorities)
  for _, band in ipairs(order) do
    local g = groups[band]
    if front then
      local reversed = {}
      for k = #g, 1, -1 do reversed[#reversed + 1] = g[k] end
      g = reversed
    end
    if push_many(front, pending_band(prefix, band), g) == #g then
      redis.call('ZADD', queue_key(prefix, 'pending'), str(-tonumber(band)), band)
    end
  end
end

-- Upgrade from the layout before lists: `pending` held the job ids themselves, scored
-- (1000 - priority) * 2^42 + seq, with the counter `seq` beside it. Only a version before
-- lists writes `seq`, so its presence marks a queue that still holds (or, during a rolling
-- upgrade, again holds) ids in the set. Those ids move to the FRONT of their priority's list
-- (they were queued before anything in the lists), in score order, and `seq` goes. A set
-- member is a band when it is a priority whose score is minus itself: an old entry would have
-- to be job id '-<seq>' at priority 1000 to look like one. One call moves them all (measured:
-- 1.5 µs per job at 100,000, 2.5 at a million: seconds of Redis for millions, once). Checked
-- once per script call, by every pending write and pop.
local pending_checked = false
local function pending_upgrade(prefix)
  if pending_checked then return end
  pending_checked = true
  local seq_key = queue_key(prefix, 'seq')
  if redis.call('EXISTS', seq_key) == 0 then return end
  local set = queue_key(prefix, 'pending')
  local all = redis.call('ZRANGE', set, 0, -1, 'WITHSCORES')
  local ids, priorities = {}, {}
  for i = 1, #all, 2 do
    local member, score = all[i], tonumber(all[i + 1])
    local p = tonumber(member)
    local band = p and str(p) == member and score == -p and math.abs(p) <= PRIORITY_MAX
    if not band then
      ids[#ids + 1] = member
      priorities[#priorities + 1] = PRIORITY_MAX - math.floor(score / 4398046511104)
    end
  end
  if #ids > 0 then
    zrem_many(set, ids)
    pending_add(prefix, ids, priorities, true)
  end
  redis.call('DEL', seq_key)
end

-- Add jobs to the back of their priorities' lists (FIFO).
local function pending_push(prefix, ids, priorities)
  if #ids == 0 then return end
  pending_upgrade(prefix)
  pending_add(prefix, ids, priorities, false)
end

-- Put popped jobs back at the FRONT of their lists, in the order given (a claim that passed
-- them over).
local function pending_unpop(prefix, ids, priorities)
  if #ids == 0 then return end
  pending_add(prefix, ids, priorities, true)
end

-- Take up to `n` jobs from the front, highest priority first, and drop the priorities whose
-- lists it drained. Returns the ids, in order, and whether pending jobs remain.
local function pending_pop(prefix, n)
  pending_upgrade(prefix)
  local set = queue_key(prefix, 'pending')
  local ids = {}
  local bands = redis.call('ZRANGE', set, 0, 0)
  while #bands > 0 and #ids < n do
    local band = bands[1]
    local key = pending_band(prefix, band)
    local want = n - #ids
    local got = redis.call('LPOP', key, want)
    if got then
      for _, id in ipairs(got) do ids[#ids + 1] = id end
    end
    -- A short pop drained the list; a full one may have: Redis deleted it if so.
    if not got or #got < want or redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', set, band)
      bands = redis.call('ZRANGE', set, 0, 0)
    else
      return ids, true
    end
  end
  return ids, #bands > 0
end

-- Take job `id` out of its priority's list (cold paths: cancel, delete, kill, reschedule);
-- LREM reads the list, so this is never on the hot path. Answers whether it was there.
local function pending_remove(prefix, id, priority)
  pending_upgrade(prefix)
  local band = band_of(priority)
  local key = pending_band(prefix, band)
  if redis.call('LREM', key, 1, id) == 0 then return false end
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', queue_key(prefix, 'pending'), band)
  end
  return true
end

-- Whether any job is pending: the set of priorities is not empty (one written by an older
-- version holds ids: not empty either). `pending_key` is that set (the scripts' KEYS).
local function pending_any(pending_key)
  return redis.call('ZCARD', pending_key) > 0
end

-- Move due jobs (score <= now) from a due set (scheduled or retry) into pending. Ids whose job
-- record is gone (deleted by hand, evicted) are dropped: a write would revive them as empty jobs.
-- Returns how many moved.
local function promote(prefix, due_key, now, limit)
  local ids = redis.call('ZRANGE', due_key, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  if #ids == 0 then return 0 end
  local moved, priorities = {}, {}
  for _, id in ipairs(ids) do
    local f = job_get_idle(prefix, id, {'state', 'priority'})
    if f[1] then
      job_set_idle(prefix, id, 'state', 'pending')
      event('pending', id)
      moved[#moved + 1] = id
      priorities[#priorities + 1] = f[2]
    end
  end
  zrem_many(due_key, ids)
  pending_push(prefix, moved, priorities)
  return #moved
end

-- Keep at most `max` members in a finished-jobs index (completed, dead, cancelled): evict the
-- oldest and delete their job records (and acked facts: `acked`, for completed).
local function cap_index(prefix, index_key, max, acked)
  local excess = redis.call('ZCARD', index_key) - max
  if excess <= 0 then return end
  local old = redis.call('ZPOPMIN', index_key, excess)
  local ids = {}
  for i = 1, #old, 2 do ids[#ids + 1] = old[i] end
  jobs_del(prefix, ids, acked)
end

-- Wake the idle workers of the queue. They block on the wake stream with XREAD from the last
-- entry they acted on; unlike a pop, an entry reaches every reader, so a frozen or cut-off
-- worker's blocked connection cannot swallow it. Trimmed approximately (`MAXLEN ~ 1`): Redis
-- drops whole nodes of old entries, so the stream keeps between 1 and about a node's worth
-- (stream-node-max-entries, 100 by default) of entries, a few KB. An exact `MAXLEN 1` frees
-- and allocates a node on every append: 3.5 µs of Redis time against 0.4, and this runs on
-- every enqueue and on most claims (docs/benchmarks.md, "The wake stream").
local function wake(wake_key)
  redis.call('XADD', wake_key, 'MAXLEN', '~', '1', '*', 'w', '1')
end

-- A job ended (completed, dead, cancelled or deleted): free its unique key, if it has one and
-- still holds it (the key may have expired and been taken by a newer job since).
local function free_unique(unique_key, id)
  if unique_key and redis.call('GET', unique_key) == id then
    redis.call('DEL', unique_key)
  end
end

-- After a job left active: when the queue has a concurrency limit and work waits, wake one
-- idle worker, which may be waiting for exactly this free slot.
local function wake_if_limited(limits_key, pending_key, wake_key)
  if redis.call('HEXISTS', limits_key, 'concurrency') == 1 and pending_any(pending_key) then
    wake(wake_key)
  end
end


-- Workflows (docs/workflows.md). A step is an ordinary job whose hash also holds `flow` (the
-- workflow hash's full key in the step's own queue, built by keys.rs), `step` (its step id),
-- `wait` (parents not ended yet) and `policy` (cancel, run, skip or only_if_failed: what a
-- failed parent does to it). Until `wait` reaches 0 it is `waiting`, in the queue's waiting
-- index, which no claim reads.
-- The workflow hash in its home queue holds `jp` (the job id prefix `flow:<id>:`), `c:<step>`
-- (the step's children in this queue, space separated), `e:<step>` (how the step ended,
-- written once per round), `r:<step>` (its result), `left` (steps not ended, in every
-- queue), a count per ending, `keep` (ms to keep it after its last step ended), and `cancel`
-- once the whole workflow was cancelled.
-- Steps in other queues: each such queue holds a PART of the workflow under the same key name
-- in its own slot: `jp`, `keep`, `home` (the home queue's name; only parts have it), `here`
-- (its steps), `left` (its steps not ended), `ready` (once the home was created), `c:<step>`
-- (children in this queue of any step), and for the steps of other queues that are parents
-- of its own, copies of their ends and results (`e:`, `r:`) with their version `v:<step>`.
-- Every hash also holds, for a step of its queue, `o:<step>` (the other queues to tell of its
-- end: those with children of it, and the home) and `g:<step>` (its round: how many times
-- `flow retry` started it over).
-- A step's end settles the children in its own queue in the script that ends it (one slot);
-- for the other queues it writes an OUTBOX entry in its own slot (`flow_tell`), which the
-- relay (broker/flows.rs) hands to `flow_settle` in the target's slot and then removes.
-- An entry carries a version, 2 * round + 1 for an end, 2 * round for a restart (`open`);
-- the target applies it only when it is newer than the version it holds (`v:<step>`), so a
-- relay that repeats an entry, or two relays that race, settle nothing twice.

-- The queue's workflow index: `flows` (member workflow id, score = creation, for lists) and
-- `flow-ends` (the finished ones, score = when their hash expires: `finished` + `keep`). A
-- finished workflow leaves both once its retention ran out, so nothing of it outlives its
-- hash. Trimmed here, at most `limit` per call, by every submit, every step end and the
-- janitor. Answers how many left.
local function flow_trim(prefix, now, limit)
  local ends = queue_key(prefix, 'flow-ends')
  local ids = redis.call('ZRANGE', ends, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  if #ids > 0 then
    zrem_many(queue_key(prefix, 'flows'), ids)
    zrem_many(ends, ids)
  end
  return #ids
end

-- The workflow id in a step job id prefix `flow:<id>:`.
local function flow_id_of(jp)
  return string.sub(jp, 6, -2)
end

-- Queue an outbox entry (docs/redis-keys.md, `flow-outbox`): field `<workflow id> <step>
-- <target queue>`, value `<version> <outcome> <result>`. A newer entry for the same step and
-- target replaces one not relayed yet (it supersedes it: the target would apply only the
-- newer one anyway).
local function flow_tell(prefix, flow_id, step, target, version, outcome, result)
  redis.call('HSET', queue_key(prefix, 'flow-outbox'), flow_id .. ' ' .. step .. ' ' .. target,
    str(version) .. ' ' .. outcome .. ' ' .. (result or ''))
end

-- Release waiting workflow steps of this queue (ids), due now: pending in their priority's
-- FIFO order, out of the waiting index, and a worker woken.
local function release_steps(prefix, ids, now_s)
  if #ids == 0 then return end
  local priorities = {}
  for n, id in ipairs(ids) do
    job_set_idle(prefix, id, 'state', 'pending', 'due', now_s)
    priorities[n] = job_get_idle(prefix, id, {'priority'})[1]
    event('pending', id)
  end
  zrem_many(queue_key(prefix, 'waiting'), ids)
  pending_push(prefix, ids, priorities)
  wake(queue_key(prefix, 'wake'))
end

-- Settle the steps in `work` and whatever follows from them, in this queue, in this call.
-- `work` holds {step, outcome, result, remote}: `remote` = the end of a step of another queue,
-- already recorded by `flow_settle`: only its children here are settled; otherwise a step of
-- this queue ended: completed, skipped, dead or cancelled. Its end is recorded once (a second
-- report of the same step, e.g. a job retried by hand after it died, changes nothing), the
-- other queues are told (`flow_tell`), then its children that still wait are settled: on
-- success (completed, skipped) or with policy `run` or `only_if_failed`, count one parent less
-- and move the child to pending at 0 (an `only_if_failed` child none of whose parents failed
-- ends as skipped instead); after a failure, policy `cancel` cancels the child and `skip` ends
-- it as skipped (a success for its own children), each settling its own children in turn,
-- transitively. A cancelled workflow releases nothing: waiting children are cancelled. A part
-- whose workflow is not ready yet (its home not created) releases nothing either: the child
-- stays waiting with `wait` 0 until `flow_ready`.
local function flow_settle_steps(prefix, flow_key, work, now)
  local f = redis.call('HMGET', flow_key, 'jp', 'cancel', 'keep', 'home', 'ready')
  local jp = f[1]
  if not jp then return end
  local cancelled_flow = f[2] ~= false
  local keep = f[3] or '86400000'
  local home = f[4]
  local held = home and not f[5]
  local flow_id = flow_id_of(jp)
  local now_s = str(now)
  local released = {}
  -- End a waiting step as skipped (a completed job with `skipped` = why: the failed parent,
  -- or 'no parent failed' for only_if_failed).
  local function skip(cid, why)
    redis.call('ZREM', queue_key(prefix, 'waiting'), cid)
    job_set(prefix, cid, 'state', 'completed', 'finished', now_s, 'skipped', why)
    redis.call('ZADD', queue_key(prefix, 'completed'), now, cid)
    event('completed', cid)
  end
  local i = 1
  while i <= #work do
    local s, out, res, remote = work[i][1], work[i][2], work[i][3], work[i][4]
    i = i + 1
    -- HEXISTS then HSET, not HSETNX: one script, so just as atomic, and no command beyond
    -- the documented ACL (docs/operations.md).
    local settle = remote
    if not remote and redis.call('HEXISTS', flow_key, 'e:' .. s) == 0 then
      settle = true
      redis.call('HSET', flow_key, 'e:' .. s, out)
      redis.call('HINCRBY', flow_key, out, 1)
      if res and res ~= '' then redis.call('HSET', flow_key, 'r:' .. s, res) end
      local others = redis.call('HGET', flow_key, 'o:' .. s)
      if others then
        local version = 2 * (tonumber(redis.call('HGET', flow_key, 'g:' .. s)) or 0) + 1
        for q in string.gmatch(others, '%S+') do
          flow_tell(prefix, flow_id, s, q, version, out, res)
        end
      end
      if redis.call('HINCRBY', flow_key, 'left', -1) == 0 then
        redis.call('PEXPIRE', flow_key, keep)
        if not home then
          redis.call('HSET', flow_key, 'finished', now_s)
          redis.call('ZADD', queue_key(prefix, 'flow-ends'), now + tonumber(keep), flow_id)
        end
      end
    end
    if settle then
      local ok = out == 'completed' or out == 'skipped'
      local children = redis.call('HGET', flow_key, 'c:' .. s) or ''
      for child in string.gmatch(children, '%S+') do
        local cid = jp .. child
        local c = job_get(prefix, cid, {'state', 'policy', 'unique', 'parent_failed'})
        if c[1] == 'waiting' then
          local policy = c[2] or 'cancel'
          local only = policy == 'only_if_failed'
          if not cancelled_flow and (ok or policy == 'run' or only) then
            if not ok then job_set(prefix, cid, 'parent_failed', s) end
            if job_incr(prefix, cid, 'wait', -1) <= 0 then
              -- only_if_failed (a batch's on_failure): every parent ended; no failure among
              -- them ends it as skipped, never released.
              if only and ok and not c[4] then
                skip(cid, 'no parent failed')
                work[#work + 1] = {child, 'skipped', nil, false}
              elseif not held then
                released[#released + 1] = cid
              end
            end
          elseif policy == 'skip' and not cancelled_flow then
            skip(cid, s)
            work[#work + 1] = {child, 'skipped', nil, false}
          else
            local why = 'workflow cancelled'
            if not cancelled_flow then why = 'parent step ' .. s .. ' ' .. out end
            redis.call('ZREM', queue_key(prefix, 'waiting'), cid)
            job_set(prefix, cid, 'state', 'cancelled', 'finished', now_s, 'error', why)
            redis.call('ZADD', queue_key(prefix, 'cancelled'), now, cid)
            free_unique(c[3], cid)
            event('cancelled', cid)
            work[#work + 1] = {child, 'cancelled', nil, false}
          end
        end
      end
    end
  end
  release_steps(prefix, released, now_s)
  flow_trim(prefix, now, 10)
end

-- A step of this queue ended: `outcome` is completed, skipped, dead or cancelled. Called by
-- every script that ends a job (with the job's `flow` and `step` fields: nothing happens for
-- a job that is no step).
local function flow_ended(prefix, flow_key, step, outcome, result, now)
  if not flow_key or not step then return end
  flow_settle_steps(prefix, flow_key, {{step, outcome, result, false}}, now)
end
