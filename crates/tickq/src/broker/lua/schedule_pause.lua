-- schedule_pause: pause or resume a schedule.
-- KEYS[1] schedule hash
-- ARGV[1] 1 to pause, 0 to resume
-- Only an existing schedule changes: a pause racing a remove must not leave a stub behind.
-- Returns 1 when the schedule exists, 0 otherwise.
-- Idempotent: yes.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'paused', ARGV[1])
return 1
