#!lua flags=allow-oom
-- node_beat: record (or, with ttl 0, remove) one live node in the registry.
-- Runs when Redis is full (flags=allow-oom): it only updates what a running node or job already
-- has, and a full Redis must not make live nodes look dead or fail running jobs (broker/memory.rs).
-- KEYS[1] nodes info (hash: node id -> JSON)  KEYS[2] nodes seen (sorted set: node id ->
--   expiry, Redis ms)
-- ARGV[1] node id  ARGV[2] its JSON  ARGV[3] ttl ms (0: the node stopped, remove it)
-- Nodes whose expiry passed (killed, cut off) are dropped here too, a few at a time, so the
-- registry holds only live nodes plus at most a few dead ones until the next beat anywhere.
-- Returns Redis time, ms.
-- Idempotent: yes; a second beat only moves the expiry.
local now = now_ms()
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local dead = redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, 100)
if #dead > 0 then
  redis.call('HDEL', KEYS[1], unpack(dead))
  redis.call('ZREM', KEYS[2], unpack(dead))
end
return now
