#!lua flags=allow-oom
-- queue_purge: delete one batch of the jobs in one state (never active: those are running).
-- Runs when Redis is full (flags=allow-oom): it drains or shrinks what is there, and a full
-- Redis must never stop the jobs it already accepted (broker/memory.rs).
-- KEYS[1] the state's index
-- ARGV[1] job key prefix  ARGV[2] the state  ARGV[3] batch size
-- Takes the first ARGV[3] ids of the index (for pending: pops them from the front of its
--   lists, highest priority first: `pending_pop`), removes them from it and deletes each job hash
--   whose state is ARGV[2] (or that is gone already); the caller loops until the answer is 0,
--   so Redis is never blocked by one long call. Deleted jobs free their unique keys; a deleted
--   workflow step that had not ended counts as cancelled for its workflow (`flow_ended`).
-- Returns how many index entries were removed (0 when the index is empty).
-- Idempotent: yes; a call on an empty index answers 0.
local pending = ARGV[2] == 'pending'
local ids
if pending then
  ids = pending_pop(ARGV[1], tonumber(ARGV[3]))
else
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
end
if #ids == 0 then return 0 end
for _, id in ipairs(ids) do
  local f = job_get(ARGV[1], id, {'state', 'unique', 'flow', 'step'})
  -- A hash in another state is not this index's job (the index entry was stale): keep it.
  if f[1] == ARGV[2] then
    free_unique(f[2], id)
    job_del(ARGV[1], id)
    flow_ended(ARGV[1], f[3], f[4], 'cancelled', nil, now_ms())
  end
end
if not pending then zrem_many(KEYS[1], ids) end
publish(ARGV[1])
return #ids
