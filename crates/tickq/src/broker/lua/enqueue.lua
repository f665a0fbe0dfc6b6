-- enqueue: create one or many jobs, pending when due now, scheduled when due later.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] wake stream
-- ARGV[1] job key prefix; then 8 per job: id, data (envelope), priority, max attempts,
--   at_ms (> 0: due at this Redis time), delay_ms (> 0: due this long after Redis now),
--   unique key ('' = none: the full reservation key), unique ttl ms.
-- Unique: a job with a unique key is created only if no other job that has not ended holds
--   the key; it then reserves the key (holding its id) for the ttl. The job's end frees it.
-- Returns one entry per job: 'pending', 'scheduled', 'exists:<state>' when a job with that
--   id is already there, or 'dup:<state>:<id>' when the unique key is held by job <id>, which
--   is in <state> (in both cases nothing is changed).
-- Each job created is counted in the queue's history and sent as an event.
-- Idempotent: yes; a repeated call answers exists:<state> (or dup:...) and changes nothing.
local prefix = ARGV[1]
local n = (#ARGV - 1) / 8
local now = now_ms()
local now_s = str(now)
local ended = {completed = true, dead = true, cancelled = true}
local out = {}
local ready, ready_prio = {}, {}
local earliest = nil
for i = 0, n - 1 do
  local b = 2 + i * 8
  local id = ARGV[b]
  local unique = ARGV[b + 6]
  -- A new id (the common case) costs one HEXISTS; the state only of a job that exists.
  local state = job_exists(prefix, id) and job_get(prefix, id, {'state'})[1]
  local holder = nil
  if not state and unique ~= '' then
    local other = redis.call('GET', unique)
    if other then
      local other_state = job_get(prefix, other, {'state'})[1]
      -- A reservation whose job ended or vanished without freeing it is taken over.
      if other_state and not ended[other_state] then
        holder = 'dup:' .. other_state .. ':' .. other
      end
    end
  end
  if state then
    out[#out + 1] = 'exists:' .. state
  elseif holder then
    out[#out + 1] = holder
  else
    local at = tonumber(ARGV[b + 4])
    local delay = tonumber(ARGV[b + 5])
    local due = now
    if at > 0 then due = at elseif delay > 0 then due = now + delay end
    if due > now then
      job_create(prefix, id, ARGV[b + 1], 'scheduled', ARGV[b + 3], ARGV[b + 2], now_s,
        str(due))
      redis.call('ZADD', KEYS[2], due, id)
      if earliest == nil or due < earliest then earliest = due end
      out[#out + 1] = 'scheduled'
      event('scheduled', id)
    else
      job_create(prefix, id, ARGV[b + 1], 'pending', ARGV[b + 3], ARGV[b + 2], now_s, now_s)
      ready[#ready + 1] = id
      ready_prio[#ready] = ARGV[b + 2]
      out[#out + 1] = 'pending'
      event('pending', id)
    end
    if unique ~= '' then
      redis.call('SET', unique, id, 'PX', ARGV[b + 7])
      job_set(prefix, id, 'unique', unique)
    end
  end
end
if #ready > 0 then
  pending_push(prefix, ready, ready_prio)
  wake(KEYS[3])
elseif earliest ~= nil then
  -- A sleeping worker computed its wake-up from the earliest due job; wake it only when this
  -- call created a new earliest one.
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if tonumber(first[2]) == earliest then wake(KEYS[3]) end
end
count(prefix, now, 'e', #events + events_left_out)
publish(prefix)
return out
