-- delete: remove a job that is not running, whatever its state.
-- KEYS[1] pending  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] completed  KEYS[5] dead
-- KEYS[6] cancelled
-- ARGV[1] job key prefix  ARGV[2] id
-- Returns the state the job had, 'notfound', or 'active' (refused: cancel it first).
-- Idempotent: yes; a second call answers 'notfound'.
local jk = ARGV[1] .. ARGV[2]
local state = redis.call('HGET', jk, 'state')
if not state then return 'notfound' end
if state == 'active' then return 'active' end
local from = {pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3], completed = KEYS[4],
  dead = KEYS[5], cancelled = KEYS[6]}
if from[state] then redis.call('ZREM', from[state], ARGV[2]) end
redis.call('DEL', jk)
return state
