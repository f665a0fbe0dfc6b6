#!lua flags=allow-oom
-- progress: record how far a running job has got, if the caller still holds it.
-- Runs when Redis is full (flags=allow-oom): it only updates what a running node or job already
-- has, and a full Redis must not make live nodes look dead or fail running jobs (broker/memory.rs).
-- KEYS[1] the job's record (its key)
-- ARGV[1] job key prefix (names the queue in the event)  ARGV[2] id  ARGV[3] fence
-- ARGV[4] progress JSON {"value", "message"}
-- The progress stays on the job after it ends (shown with it), and is sent as an event.
-- Returns 1 when recorded, 0 when the caller no longer holds the job (nothing changed).
-- Idempotent: yes; the same progress twice records the same value.
local f = job_get(ARGV[1], ARGV[2], {'state', 'fence'})
if f[1] ~= 'active' or f[2] ~= ARGV[3] then return 0 end
job_set(ARGV[1], ARGV[2], 'progress', ARGV[4])
event('progress', ARGV[2])
publish(ARGV[1])
return 1
