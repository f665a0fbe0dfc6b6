-- jobs_page: one page of a state's index, after a cursor, optionally filtered. Reads only.
-- KEYS[1] the index (sorted set) of one state; for pending the set of its priorities, whose
--   lists (prelude.lua, "Pending") are read in order, highest priority first
-- ARGV[1] job key prefix  ARGV[2] '1' newest first (ZREVRANGE order), '0' index order
-- ARGV[3] cursor score ('' = from the start)  ARGV[4] cursor id
-- ARGV[5] most matches to return  ARGV[6] most entries to examine (the budget)
-- ARGV[7] kind ('' = any; exact)  ARGV[8] payload substring ('' = any)
-- ARGV[9] last-error substring ('' = any)  ARGV[10] from ms ('' = none)  ARGV[11] to ms
-- ARGV[12] the job field that holds the state's time (due, started or finished)
-- The cursor is the (score, id) of the last entry examined. When that entry is still in the
-- index with the same score, the page goes on from its rank; when it moved, from the first
-- entry after its (score, id) place, so entries that stayed are never repeated or skipped.
-- Pending: the cursor is (priority, id). The page goes on after the id in its priority's list
--   (LPOS), or from the front of that list when the id left it, then through the lower
--   priorities' lists. Jobs taken from the front meanwhile are simply gone; a job cancelled
--   or deleted from the middle of a list moves the entries behind it forward, so when it is
--   the cursor's own job the next page may repeat entries of its priority.
-- Returns {next score, next id, examined, id...}: the next cursor ('' '' at the end of the
-- index), how many entries were examined, and the matching ids in order. Without filters no job hash is read.
-- Idempotent: yes (reads only).
local key = KEYS[1]
local prefix = ARGV[1]
local rev = ARGV[2] == '1'
local cur_score, cur_id = ARGV[3], ARGV[4]
local want, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local kind, q, err = ARGV[7], ARGV[8], ARGV[9]
local from_ms, to_ms = tonumber(ARGV[10]), tonumber(ARGV[11])
local time_field = ARGV[12]
local filtered = kind ~= '' or q ~= '' or err ~= '' or from_ms ~= nil or to_ms ~= nil
local kind_text = '"kind":' .. cjson.encode(kind)

local function range(a, b)
  if rev then
    return redis.call('ZREVRANGE', key, a, b, 'WITHSCORES')
  end
  return redis.call('ZRANGE', key, a, b, 'WITHSCORES')
end

-- A queue an older version wrote (its `seq` counter is there) still holds job ids in its
-- pending set until its next pending write: read that as a sorted set, as before.
local lists = key == queue_key(prefix, 'pending') and
  redis.call('EXISTS', queue_key(prefix, 'seq')) == 0

-- Where to start: the rank after the cursor (for pending: the band and the position in it).
local start = 0
local bands, band_at = {}, 1
if lists then
  if cur_score == '' then
    bands = redis.call('ZRANGE', key, 0, -1)
  else
    -- The cursor's band and those below it (score = minus the priority).
    local cp = tonumber(cur_score)
    bands = redis.call('ZRANGE', key, -cp, '+inf', 'BYSCORE')
    if bands[1] and tonumber(bands[1]) == cp then
      local pos = redis.call('LPOS', pending_band(prefix, bands[1]), cur_id)
      if pos then start = pos + 1 end
    end
  end
elseif cur_score ~= '' then
  local cs = tonumber(cur_score)
  local rank = rev and redis.call('ZREVRANK', key, cur_id) or redis.call('ZRANK', key, cur_id)
  local score = rank and tonumber(redis.call('ZSCORE', key, cur_id))
  if rank and score == cs then
    start = rank + 1
  else
    -- The cursor's entry moved: count what sorts before its score, then step over the ties
    -- that sort at or before its id (members of one score are in id order).
    if rev then
      start = redis.call('ZCOUNT', key, '(' .. cur_score, '+inf')
    else
      start = redis.call('ZCOUNT', key, '-inf', '(' .. cur_score)
    end
    while true do
      local e = range(start, start + 99)
      local moved = 0
      for i = 1, #e, 2 do
        local s = tonumber(e[i + 1])
        local before = s == cs and ((not rev and e[i] <= cur_id) or (rev and e[i] >= cur_id))
        if not before then break end
        moved = moved + 1
      end
      start = start + moved
      if moved < 100 then break end
    end
  end
end

local function matches(id)
  if not filtered then return true end
  local f = job_get(prefix, id, {'data', 'error', time_field})
  local data = f[1]
  if not data then return false end
  if kind ~= '' and not string.find(data, kind_text, 1, true) then return false end
  if q ~= '' then
    local at = string.find(data, '"payload":', 1, true)
    if not at or not string.find(data, q, at + 10, true) then return false end
  end
  if err ~= '' and not (f[2] and string.find(f[2], err, 1, true)) then return false end
  if from_ms or to_ms then
    local t = tonumber(f[3])
    if not t then return false end
    if from_ms and t < from_ms then return false end
    if to_ms and t >= to_ms then return false end
  end
  return true
end

-- The next `n` entries (id, score, ...) from `start`, and `start` moved past them. Pending
-- reads the lists band after band: the score is the band's priority.
local function read(n)
  if not lists then
    local e = range(start, start + n - 1)
    start = start + #e / 2
    return e
  end
  local e = {}
  while #e / 2 < n and band_at <= #bands do
    local want = n - #e / 2
    local band = bands[band_at]
    local got = redis.call('LRANGE', pending_band(prefix, band), start, start + want - 1)
    for _, id in ipairs(got) do
      e[#e + 1] = id
      e[#e + 1] = band
    end
    if #got < want then
      band_at, start = band_at + 1, 0
    else
      start = start + #got
    end
  end
  return e
end

local out = {'', '', '0'}
local found, examined = 0, 0
local chunk = filtered and 200 or want
while found < want and examined < budget do
  local n = math.min(chunk, budget - examined)
  local e = read(n)
  if #e == 0 then
    out[1], out[2], out[3] = '', '', tostring(examined)
    return out -- the end: no next cursor
  end
  for i = 1, #e, 2 do
    examined = examined + 1
    out[1], out[2] = e[i + 1], e[i]
    if matches(e[i]) then
      out[#out + 1] = e[i]
      found = found + 1
      if found == want then
        out[3] = tostring(examined)
        return out
      end
    end
  end
  if #e / 2 < n then
    out[1], out[2], out[3] = '', '', tostring(examined) -- a short read: the end of the index
    return out
  end
end
out[3] = tostring(examined)
return out
