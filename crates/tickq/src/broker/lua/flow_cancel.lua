#!lua flags=allow-oom
-- flow_cancel: mark a workflow cancelled, so that no step ending from now on releases a child:
-- `flow_ended` (prelude.lua) cancels each waiting child instead. The caller then cancels the
-- steps that have not ended, parents before children.
-- Runs when Redis is full (flags=allow-oom): cancelling must work then too.
-- KEYS[1] the workflow hash
-- Returns 1, or 0 when the workflow is gone (nothing written).
-- Idempotent: yes; marking twice changes nothing.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
return 1
