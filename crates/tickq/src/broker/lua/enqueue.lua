-- enqueue: create one or many jobs, pending when due now, scheduled when due later.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] seq  KEYS[4] marker
-- ARGV[1] job key prefix; then 6 per job: id, data (envelope), priority, max attempts,
--   at_ms (> 0: due at this Redis time), delay_ms (> 0: due this long after Redis now).
-- Returns one entry per job: 'pending', 'scheduled', or 'exists:<state>' when a job with that
--   id is already there (it is left untouched).
-- Idempotent: yes; a repeated call answers exists:<state> and changes nothing.
local prefix = ARGV[1]
local n = (#ARGV - 1) / 6
local now = now_ms()
local now_s = str(now)
local seq = redis.call('INCRBY', KEYS[3], n) - n
local out = {}
local ready = {}
local earliest = nil
for i = 0, n - 1 do
  local b = 2 + i * 6
  local id = ARGV[b]
  local jk = prefix .. id
  local state = redis.call('HGET', jk, 'state')
  if state then
    out[#out + 1] = 'exists:' .. state
  else
    local prio = tonumber(ARGV[b + 2])
    local at = tonumber(ARGV[b + 4])
    local delay = tonumber(ARGV[b + 5])
    local due = now
    if at > 0 then due = at elseif delay > 0 then due = now + delay end
    if due > now then
      redis.call('HSET', jk, 'data', ARGV[b + 1], 'state', 'scheduled', 'attempt', '0',
        'max', ARGV[b + 3], 'priority', ARGV[b + 2], 'fence', '0', 'created', now_s,
        'due', str(due))
      redis.call('ZADD', KEYS[2], due, id)
      if earliest == nil or due < earliest then earliest = due end
      out[#out + 1] = 'scheduled'
    else
      redis.call('HSET', jk, 'data', ARGV[b + 1], 'state', 'pending', 'attempt', '0',
        'max', ARGV[b + 3], 'priority', ARGV[b + 2], 'fence', '0', 'created', now_s,
        'due', now_s)
      ready[#ready + 1] = pending_score(prio, seq + i + 1)
      ready[#ready + 1] = id
      out[#out + 1] = 'pending'
    end
  end
end
if #ready > 0 then
  zadd_many(KEYS[1], ready)
  wake(KEYS[4])
elseif earliest ~= nil then
  -- A sleeping worker computed its wake-up from the earliest due job; wake it only when this
  -- call created a new earliest one.
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if tonumber(first[2]) == earliest then wake(KEYS[4]) end
end
return out
