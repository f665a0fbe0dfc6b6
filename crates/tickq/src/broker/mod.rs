//! The Redis layer: key names, the stored job format and one atomic script per transition.
//!
//! | module | job |
//! | --- | --- |
//! | this file | the `Broker` handle: connect, the key cache, the queue registry; due-time arguments |
//! | `jobs` | the worker's transitions: claim, ack, fail, renew, requeue, recover |
//! | `admin` | the operator's transitions: cancel, delete, retry, reschedule, kill, pause, purge, janitor |
//! | `enqueue`, `flows`, `schedules`, `shards`, `locks`, `limits`, `nodes`, `wake`, `events`, `read` | their own scripts and reads |
//! | `conn`, `tls`, `memory`, `doctor` | connections (one server, Sentinel, Cluster), TLS, the memory gauge, the doctor's probes |
//! | `keys`, `message`, `scripts`, `value` | key names, the stored envelope, the script set, reply decoding |
//!
//! It owns no timers and spawns nothing: the worker runtime decides when to call it.

mod admin;
pub(crate) mod conn;
pub(crate) mod doctor;
mod enqueue;
pub(crate) mod events;
mod flows;
mod jobs;
pub(crate) mod keys;
mod limits;
pub(crate) mod locks;
pub(crate) mod memory;
pub(crate) mod message;
mod nodes;
mod read;
pub(crate) mod record;
pub(crate) mod schedules;
pub(crate) mod scripts;
mod shards;
mod tls;
mod upgrade;
mod value;
mod wake;

pub use admin::CancelOutcome;
pub(crate) use flows::ORPHAN_PART_AGE;
pub(crate) use jobs::{AckOutcome, Claimed, FailMode, FailOutcome};
pub(crate) use read::PageQuery;

use crate::job::Due;
use crate::{Error, Result};
use conn::Conn;
use keys::QueueKeys;
use redis::AsyncCommands;
use scripts::SCRIPTS;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long finished jobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long a completed or cancelled job is kept. Default: 24 hours. Zero: not kept.
    pub completed_for: Duration,
    /// At most this many completed jobs per queue (the oldest go first). Default: 10,000.
    pub completed_max: u64,
    /// How long a dead job is kept. Default: 30 days.
    pub dead_for: Duration,
    /// At most this many dead jobs per queue (the oldest go first). Default: 10,000.
    pub dead_max: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            completed_for: Duration::from_secs(24 * 3600),
            completed_max: 10_000,
            dead_for: Duration::from_secs(30 * 24 * 3600),
            dead_max: 10_000,
        }
    }
}

impl Retention {
    pub(crate) fn keep_ms(&self) -> u64 {
        if self.completed_max == 0 {
            0
        } else {
            self.completed_for.as_millis() as u64
        }
    }
}

/// A connection to Redis plus the script set: cheap to clone, shared by every component.
#[derive(Clone)]
pub(crate) struct Broker {
    target: conn::Target,
    conn: Conn,
    keys: Arc<Mutex<HashMap<String, Arc<QueueKeys>>>>,
    registered: Arc<Mutex<HashSet<String>>>,
    /// Queues this process saw in layout 5 or moved to it (`upgrade.rs`).
    upgraded: Arc<Mutex<HashSet<String>>>,
    /// Redis' memory use as last sampled, shared by every clone (see `memory.rs`).
    memory: Arc<memory::MemoryGauge>,
    /// Enqueues are refused at or above this fraction of `maxmemory`.
    pub(crate) high_water: f64,
    /// Shard counts read so far, shared by every clone (see `shard.rs`).
    pub(crate) shards: Arc<crate::shard::ShardCache>,
}

/// Check a Redis URL without connecting: one server (`redis://`, `rediss://`,
/// `redis+unix://`), a Cluster (`redis-cluster://host:port,host:port`, or a comma-separated
/// list of `redis://` URLs), or the master Redis Sentinel names
/// (`redis-sentinel://host:port,host:port/MASTER_NAME[/db]`). The error says what is expected.
pub fn validate_redis_url(url: &str) -> Result<()> {
    conn::Target::parse(url, &crate::TlsFiles::new()).map(|_| ())
}

/// The URL with any password replaced, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
            } else {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
        }
        _ => url.to_owned(),
    }
}

impl Broker {
    /// Connect to Redis (one server, Sentinel, or a Cluster: see [`conn::Target::parse`]) and
    /// load the scripts. Fails with `Unavailable` when Redis cannot be reached, `Tls` when
    /// the TLS handshake fails, and `InvalidArgument` when the URL or the options are wrong.
    pub(crate) async fn connect(url: &str, options: &crate::ConnectOptions) -> Result<Broker> {
        let target = conn::Target::parse(url, &options.tls)?;
        target
            .probe()
            .await
            .map_err(|e| conn::unreachable(url, e))?;
        let conn = target
            .connect(options.response_timeout)
            .await
            .map_err(|e| conn::unreachable(url, e))?;
        let broker = Broker {
            target,
            conn,
            keys: Arc::default(),
            registered: Arc::default(),
            upgraded: Arc::default(),
            memory: Arc::default(),
            high_water: memory::DEFAULT_HIGH_WATER,
            shards: Arc::default(),
        };
        broker.load_scripts().await?;
        Ok(broker)
    }

    /// A separate connection for blocking commands, which would stall the shared multiplexed
    /// one. Its response timeout covers the longest block.
    pub(crate) async fn blocking_connection(&self, block: Duration) -> Result<Conn> {
        Ok(self.target.connect(block + Duration::from_secs(5)).await?)
    }

    async fn load_scripts(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        for script in SCRIPTS.all() {
            script.load_async(&mut conn).await?;
        }
        Ok(())
    }

    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The keys of `queue` (built once per queue and cached).
    /// Whether this process saw `queue` in layout 5 already (`upgrade.rs`).
    fn upgraded(&self, queue: &str) -> bool {
        self.upgraded
            .lock()
            .expect("upgrade registry poisoned")
            .contains(queue)
    }

    fn mark_upgraded(&self, queue: &str) {
        self.upgraded
            .lock()
            .expect("upgrade registry poisoned")
            .insert(queue.to_owned());
    }

    pub(crate) fn keys(&self, queue: &str) -> Arc<QueueKeys> {
        let mut keys = self.keys.lock().expect("keys cache poisoned");
        keys.entry(queue.to_owned())
            .or_insert_with(|| Arc::new(QueueKeys::new(queue)))
            .clone()
    }

    /// Record the queue in the global registry, once per process.
    pub(crate) async fn register_queue(&self, queue: &str) -> Result<()> {
        if self
            .registered
            .lock()
            .expect("registry poisoned")
            .contains(queue)
        {
            return Ok(());
        }
        let _: i64 = self.conn.clone().sadd(keys::QUEUES, queue).await?;
        self.registered
            .lock()
            .expect("registry poisoned")
            .insert(queue.to_owned());
        Ok(())
    }

    /// Every queue that has ever received a job, sorted.
    pub(crate) async fn queues(&self) -> Result<Vec<String>> {
        let mut queues: Vec<String> = self.conn.clone().smembers(keys::QUEUES).await?;
        queues.sort();
        Ok(queues)
    }
}

/// The command that wakes a queue's idle workers, for transactions outside scripts: the same
/// as `wake` in prelude.lua.
pub(crate) fn wake_command(keys: &QueueKeys) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&keys.wake)
        .arg("MAXLEN")
        .arg("~")
        .arg(1)
        .arg("*")
        .arg("w")
        .arg(1);
    cmd
}

pub(crate) fn job_not_found(queue: &str, id: &str) -> Error {
    Error::not_found(format!("no job {id} in queue {queue}"))
}

/// The script arguments (at_ms, delay_ms) of a due time: at most one is non-zero, and both are
/// zero for "now".
///
/// A job must never start before it is due, and due times are whole milliseconds, so both are
/// rounded up, never truncated: `At` to the next whole millisecond; `In` to whole milliseconds
/// plus one, because the script adds it to Redis' clock read in whole milliseconds, which is
/// up to a millisecond behind the true instant. A claim leases a job once Redis' clock (again
/// in whole milliseconds, rounded down) reaches its due time, so it starts at or after it.
pub(crate) fn due_args(due: &Due) -> (i64, u64) {
    match due {
        Due::Now => (0, 0),
        Due::In(d) => (0, ceil_ms(*d) + 1),
        Due::At(t) => (ceil_ms_at(*t).max(1), 0),
    }
}

/// `d` in whole milliseconds, rounded up.
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// `t` in Unix milliseconds, rounded up (towards the future).
pub(crate) fn ceil_ms_at(t: jiff::Timestamp) -> i64 {
    let ms = t.as_millisecond();
    if i128::from(ms) * 1_000_000 < t.as_nanosecond() {
        ms + 1
    } else {
        ms
    }
}

#[cfg(test)]
use crate::ErrorKind;
#[cfg(test)]
use crate::job::JobState;
#[cfg(test)]
use crate::job::{Enqueued, NewJob};
#[cfg(test)]
use crate::job::{JobInfo, ms_to_timestamp};
#[cfg(test)]
use crate::queue::QueueCounts;
#[cfg(test)]
use jobs::{ClaimBatch, Recovered};
#[cfg(test)]
use message::Envelope;
#[cfg(test)]
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;
