//! The Redis key schema: the only place key strings are built.
//!
//! Every key of a queue carries the queue name as a hash tag (`tickq:{<queue>}:...`), so all
//! keys one script touches live in one Cluster slot. The schema is documented in
//! `docs/redis-keys.md`; change both together and bump [`SCHEMA_VERSION`].

/// Version of the key schema and of the stored job format.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The set of queue names that have ever received a job (global, not hash-tagged; written by
/// plain commands, never inside a per-queue script).
pub(crate) const QUEUES: &str = "tickq:queues";

/// The shard count of each sharded queue (global hash: queue -> K; written once by a plain
/// `HSETNX` when the queue is declared, never inside a script; see `shard.rs`). A queue that
/// is not in it has no shards.
pub(crate) const SHARDS: &str = "tickq:shards";

/// Which queue each schedule feeds (global hash: schedule name -> queue; written by plain
/// commands outside scripts).
pub(crate) const SCHEDULES: &str = "tickq:schedules";

/// The node registry: live nodes' records (hash: node id -> JSON) and their expiries (sorted
/// set: node id -> Redis ms). One hash tag, so one script keeps both; `#` cannot be in a
/// queue name, so no queue shares it.
pub(crate) const NODES_INFO: &str = "tickq:{#nodes}:info";
pub(crate) const NODES_SEEN: &str = "tickq:{#nodes}:seen";

/// Locks that were ever taken (sorted set: name -> Redis ms of the latest acquire), so the
/// inspector can list them without scanning the keyspace. Written by a plain command after an
/// acquire, never inside a lock's script.
pub(crate) const LOCKS: &str = "tickq:locks";

/// What watchers `PSUBSCRIBE` to: every tickq channel (the queues' events channels, see
/// [`QueueKeys::events`]; other channels are skipped by name). Exactly the ACL's channel rule
/// `&tickq:*`, since Redis allows a pattern subscription only when the pattern is literally
/// one of the user's channel patterns.
pub(crate) const EVENTS_PATTERN: &str = "tickq:*";

/// How long a minute of a queue's history is kept (`HISTORY_KEEP_MS` in `lua/prelude.lua`).
pub(crate) const HISTORY_KEEP: std::time::Duration = std::time::Duration::from_secs(8 * 24 * 3600);

/// Prefix of the throwaway keys `tickq doctor` writes to find out which commands this user
/// may run (each expires within a minute and is deleted at once). `#` cannot be in a queue
/// name, so no queue shares the hash tag.
pub(crate) const DOCTOR_PREFIX: &str = "tickq:{#doctor}";

/// Every key of one queue, built once and reused for each call.
#[derive(Debug, Clone)]
pub(crate) struct QueueKeys {
    pub(crate) name: String,
    /// Prefix of job notes hashes: the key is this followed by the job id (a job's rare
    /// facts; see `record.rs`).
    pub(crate) job_prefix: String,
    /// Every job's payload record (hash: id -> "<created> <due> <max> <priority>\n<data>";
    /// its presence is the job's existence). The sparse hashes `attempts`, `groups`, `dues`
    /// and `ends` hold rare facts the claim reads (`record.rs`). Scripts build all five from
    /// the job prefix (`queue_key` in lua/prelude.lua).
    pub(crate) jobs: String,
    pub(crate) attempts: String,
    pub(crate) groups: String,
    pub(crate) dues: String,
    pub(crate) ends: String,
    /// Present once the queue's jobs are in layout 5 (`upgrade.rs`).
    pub(crate) layout: String,
    /// The priorities that have pending jobs (sorted set: member the priority, score minus
    /// it); each has its list of pending jobs, [`QueueKeys::pending_band`]. Scripts build the
    /// lists from the job prefix (`pending_band` in lua/prelude.lua).
    pub(crate) pending: String,
    /// Workflow steps whose parents have not all ended (sorted set by creation ms). Scripts
    /// also build it from the job prefix (`queue_key` in lua/prelude.lua).
    pub(crate) waiting: String,
    /// Prefix of workflow hashes: the key is this followed by the workflow id.
    pub(crate) flow_prefix: String,
    /// The queue's workflows by creation time; `flow_ends`: the finished ones by the time
    /// their retention runs out (lua/prelude.lua, `flow_trim`).
    pub(crate) flows: String,
    pub(crate) flow_ends: String,
    /// Ends of this queue's workflow steps to hand to other queues (hash; lua/prelude.lua,
    /// `flow_tell`), drained by the relay (flows.rs).
    pub(crate) flow_outbox: String,
    /// Parts of workflows (in this queue, homed elsewhere) whose home has not told them it
    /// exists yet, by creation time: a part still here long after its submit is an orphan
    /// the janitor drops (`flows.rs`, `drop_orphan_parts`; `flow_submit` and `flow_settle`
    /// build it from the job prefix).
    pub(crate) flow_parts: String,
    pub(crate) scheduled: String,
    pub(crate) retry: String,
    pub(crate) active: String,
    /// The facts of each active job's run (hash: id -> "fence started attempt owner", see
    /// `record.rs`); scripts build it from the job prefix (`queue_key` in lua/prelude.lua).
    pub(crate) running: String,
    /// The completion facts of each job ack.lua completed and kept (hash: id -> "finished
    /// fence started attempt owner"); built from the job prefix in the scripts too.
    pub(crate) acked: String,
    pub(crate) completed: String,
    pub(crate) dead: String,
    pub(crate) cancelled: String,
    /// The FIFO counter of versions before pending lists: present only in a queue such a
    /// version wrote, whose pending set still holds job ids (`pending_upgrade` in
    /// lua/prelude.lua moves them into the lists and deletes it). Only tests name it here.
    #[cfg(test)]
    pub(crate) seq: String,
    /// Source of fencing tokens: every claim takes the next value.
    pub(crate) fence: String,
    /// Wake-up stream: scripts append to it when work arrives; idle workers block on it with
    /// `XREAD`, which delivers to every reader.
    pub(crate) wake: String,
    pub(crate) stats: String,
    /// Present while the queue is paused: the claim script leases nothing.
    pub(crate) paused: String,
    /// Prefix of schedule hashes: the schedule key is this followed by the schedule name.
    pub(crate) schedule_prefix: String,
    /// The queue's schedules by next fire time (Redis ms).
    pub(crate) schedules_due: String,
    /// Prefix of job-group sets (which workers hold a job of one cron tick), for spreading.
    pub(crate) group_prefix: String,
    /// Prefix of unique-key reservations: the key is this followed by the unique key, and
    /// holds the id of the job that reserved it.
    pub(crate) unique_prefix: String,
    /// The queue's limits (hash: concurrency, rate, per), read by every claim.
    pub(crate) limits: String,
    /// Recent starts (sorted set by Redis ms) counted against the rate limit.
    pub(crate) rate_log: String,
    /// Prefix of the per-minute history hashes: the key is this followed by the minute
    /// (whole minutes since the Unix epoch). Built from the job prefix in the scripts too.
    pub(crate) history_prefix: String,
    /// The pub/sub channel the queue's scripts publish job state changes on (one message per
    /// script call; see `events.rs` and `lua/prelude.lua`). Hash-tagged like the keys, so a
    /// `PUBLISH` inside a transaction stays in the queue's slot.
    pub(crate) events: String,
}

impl QueueKeys {
    pub(crate) fn new(queue: &str) -> QueueKeys {
        let base = format!("tickq:{{{queue}}}:");
        let key = |suffix: &str| format!("{base}{suffix}");
        QueueKeys {
            name: queue.to_owned(),
            job_prefix: key("job:"),
            jobs: key("jobs"),
            attempts: key("attempts"),
            groups: key("groups"),
            dues: key("dues"),
            ends: key("ends"),
            layout: key("layout"),
            pending: key("pending"),
            waiting: key("waiting"),
            flow_prefix: key("flow:"),
            flows: key("flows"),
            flow_ends: key("flow-ends"),
            flow_outbox: key("flow-outbox"),
            flow_parts: key("flow-parts"),
            scheduled: key("scheduled"),
            retry: key("retry"),
            active: key("active"),
            running: key("running"),
            acked: key("acked"),
            completed: key("completed"),
            dead: key("dead"),
            cancelled: key("cancelled"),
            #[cfg(test)]
            seq: key("seq"),
            fence: key("fence"),
            wake: key("wake"),
            stats: key("stats"),
            paused: key("paused"),
            schedule_prefix: key("schedule:"),
            schedules_due: key("schedules-due"),
            group_prefix: key("group:"),
            unique_prefix: key("unique:"),
            limits: key("limits"),
            rate_log: key("rate-log"),
            history_prefix: key("history:"),
            events: key("events"),
        }
    }

    /// The key of job `id`'s hash. Only `record.rs` reads or writes job records.
    pub(crate) fn job(&self, id: &str) -> String {
        format!("{}{id}", self.job_prefix)
    }

    /// The key that holds job `id`'s record (a script that touches one job names it in KEYS).
    pub(crate) fn record(&self, id: &str) -> String {
        self.job(id)
    }

    /// The reservation key of a unique key (see `NewJob::unique_for`).
    pub(crate) fn unique(&self, unique_key: &str) -> String {
        format!("{}{unique_key}", self.unique_prefix)
    }

    /// The history hash of the minute that holds Redis time `ms`.
    pub(crate) fn history(&self, ms: i64) -> String {
        format!("{}{}", self.history_prefix, ms.div_euclid(60_000))
    }

    /// The hash of one workflow (its definition, per-step ends and results, counts).
    pub(crate) fn flow(&self, id: &str) -> String {
        format!("{}{id}", self.flow_prefix)
    }

    pub(crate) fn schedule(&self, name: &str) -> String {
        format!("{}{name}", self.schedule_prefix)
    }

    /// The list of the pending jobs of one priority, front first (`pending_band` in
    /// lua/prelude.lua builds the same name).
    pub(crate) fn pending_band(&self, priority: i32) -> String {
        format!("{}:{priority}", self.pending)
    }

    /// The index that holds jobs in `state`: a sorted set of ids, except for pending, where
    /// it is the set of priorities (see [`QueueKeys::pending`]).
    pub(crate) fn index(&self, state: crate::JobState) -> &str {
        use crate::JobState::*;
        match state {
            Waiting => &self.waiting,
            Scheduled => &self.scheduled,
            Pending => &self.pending,
            Active => &self.active,
            Retry => &self.retry,
            Dead => &self.dead,
            Completed => &self.completed,
            Cancelled => &self.cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = QueueKeys::new("emails");
        assert_eq!(k.pending, "tickq:{emails}:pending");
        assert_eq!(k.job("abc"), "tickq:{emails}:job:abc");
        assert_eq!(k.pending_band(-5), "tickq:{emails}:pending:-5");
        // lua/prelude.lua builds these two from the job prefix.
        assert_eq!(k.waiting, "tickq:{emails}:waiting");
        assert_eq!(k.flow("f1"), "tickq:{emails}:flow:f1");
        for key in [
            &k.scheduled,
            &k.retry,
            &k.active,
            &k.wake,
            &k.seq,
            &k.stats,
            &k.paused,
            &k.limits,
            &k.rate_log,
            &k.unique("x"),
            &k.waiting,
            &k.flow("f1"),
        ] {
            assert!(key.starts_with("tickq:{emails}:"), "{key}");
        }
    }
}

/// Every key of one lock. The lock name is the hash tag (`tickq:{lock:<name>}:...`), so the
/// owner, the fence counter and the fenced data of one lock live in one Cluster slot and one
/// script can touch them all.
#[derive(Debug, Clone)]
pub(crate) struct LockKeys {
    /// The holder's random token, with the lock's TTL (`SET NX PX`).
    pub(crate) owner: String,
    /// The last fence issued for this lock (INCR; never expires, so fences are never reused).
    pub(crate) fence: String,
    /// Prefix of fenced data: a data key is this followed by the caller's key.
    pub(crate) data_prefix: String,
}

impl LockKeys {
    pub(crate) fn new(name: &str) -> LockKeys {
        let base = format!("tickq:{{lock:{name}}}:");
        LockKeys {
            owner: format!("{base}owner"),
            fence: format!("{base}fence"),
            data_prefix: format!("{base}data:"),
        }
    }

    /// The hash that holds one fenced value and the fence that wrote it.
    pub(crate) fn data(&self, key: &str) -> String {
        format!("{}{key}", self.data_prefix)
    }
}

#[cfg(test)]
mod lock_key_tests {
    use super::*;

    #[test]
    fn lock_keys_share_the_lock_hash_tag() {
        let k = LockKeys::new("nightly-report");
        assert_eq!(k.owner, "tickq:{lock:nightly-report}:owner");
        assert_eq!(k.fence, "tickq:{lock:nightly-report}:fence");
        assert_eq!(k.data("cursor"), "tickq:{lock:nightly-report}:data:cursor");
        // Never the same slot as a queue of the same name.
        assert_ne!(k.owner, QueueKeys::new("nightly-report").fence);
    }
}
