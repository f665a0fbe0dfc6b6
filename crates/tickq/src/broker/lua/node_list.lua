-- node_list: the live nodes. Reads only.
-- KEYS[1] nodes info  KEYS[2] nodes seen
-- Returns {Redis time ms, then per live node: expiry ms, JSON}, in node id order.
-- Idempotent: yes (reads only).
local now = now_ms()
local live = redis.call('ZRANGE', KEYS[2], '(' .. now, '+inf', 'BYSCORE', 'WITHSCORES')
local out = {now}
for i = 1, #live, 2 do
  local json = redis.call('HGET', KEYS[1], live[i])
  if json then
    out[#out + 1] = tonumber(live[i + 1])
    out[#out + 1] = json
  end
end
return out
