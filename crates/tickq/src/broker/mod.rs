//! The Redis layer: key names, the stored job format and one atomic script per transition.
//!
//! It owns no timers and spawns nothing: the worker runtime decides when to call it.

pub(crate) mod conn;
pub(crate) mod doctor;
mod enqueue;
pub(crate) mod events;
mod flows;
pub(crate) mod keys;
mod limits;
pub(crate) mod locks;
pub(crate) mod memory;
pub(crate) mod message;
mod nodes;
mod read;
pub(crate) mod schedules;
pub(crate) mod scripts;
mod tls;
mod value;
mod wake;

pub(crate) use read::PageQuery;

use crate::job::{Due, JobState};
use crate::{Error, Result};
use conn::Conn;
use keys::QueueKeys;
use redis::{AsyncCommands, Value};
use scripts::SCRIPTS;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use value::{int, text};

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

/// A leased job as the claim script returns it.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: String,
    pub(crate) data: Vec<u8>,
    pub(crate) attempt: u32,
    pub(crate) fence: u64,
    /// When the job was due (Redis ms; 0 if unknown).
    pub(crate) due_ms: i64,
}

/// The answer of one claim call.
#[derive(Debug, Clone)]
pub(crate) struct ClaimBatch {
    /// Redis time of the call, ms.
    pub(crate) now_ms: i64,
    /// When to look again (Redis ms): `now_ms` if work is left, -1 if nothing waits.
    pub(crate) next_due_ms: i64,
    #[allow(dead_code, reason = "read by the script tests")]
    pub(crate) lease_until_ms: i64,
    pub(crate) jobs: Vec<Claimed>,
}

/// How a failed attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailMode {
    /// Retry after the delay, or dead when attempts are used up.
    Retry(Duration),
    /// Dead now.
    Kill,
    /// Cancelled (a cancel was asked while it ran).
    Cancel,
}

/// The state a failed attempt left the job in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailOutcome {
    Retry,
    Dead,
    Cancelled,
    /// Not applied: the caller no longer holds the job.
    Stale,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AckOutcome {
    pub(crate) acked: u64,
    /// Already completed with the same fence by an earlier ack (see ack.lua).
    pub(crate) again: u64,
    pub(crate) stale: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Renewed {
    #[allow(dead_code, reason = "read by the script tests")]
    pub(crate) lease_until_ms: i64,
    pub(crate) lost: Vec<String>,
    pub(crate) cancel_requested: Vec<String>,
}

/// What one recover call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) to_pending: u64,
    pub(crate) to_dead: u64,
    pub(crate) to_cancelled: u64,
}

/// The answer to a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CancelOutcome {
    /// The job was waiting and is now cancelled (or was cancelled already).
    Cancelled,
    /// The job is running; its worker was asked to stop it.
    Cancelling,
}

/// A connection to Redis plus the script set: cheap to clone, shared by every component.
#[derive(Clone)]
pub(crate) struct Broker {
    target: conn::Target,
    conn: Conn,
    keys: Arc<Mutex<HashMap<String, Arc<QueueKeys>>>>,
    registered: Arc<Mutex<HashSet<String>>>,
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

    pub(crate) async fn claim(
        &self,
        keys: &QueueKeys,
        owner: &str,
        lease: Duration,
        max: usize,
        spread_grace: Duration,
    ) -> Result<ClaimBatch> {
        let reply: Vec<Value> = SCRIPTS
            .claim
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.active)
            .key(&keys.seq)
            .key(&keys.wake)
            .key(&keys.fence)
            .key(&keys.paused)
            .key(&keys.limits)
            .key(&keys.rate_log)
            .arg(&keys.job_prefix)
            .arg(owner)
            .arg(lease.as_millis() as u64)
            .arg(max)
            .arg(&keys.group_prefix)
            .arg(spread_grace.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if reply.len() < 3 || !(reply.len() - 3).is_multiple_of(5) {
            return Err(Error::corrupt("claim script returned an unexpected reply"));
        }
        let jobs = reply[3..]
            .chunks(5)
            .map(|c| {
                Ok(Claimed {
                    id: text(&c[0])?,
                    data: value::bytes(&c[1]),
                    attempt: int(&c[2])? as u32,
                    fence: int(&c[3])? as u64,
                    due_ms: int(&c[4])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ClaimBatch {
            now_ms: int(&reply[0])?,
            next_due_ms: int(&reply[1])?,
            lease_until_ms: int(&reply[2])?,
            jobs,
        })
    }

    /// Complete jobs held with these fences; `result` is kept with the job when not empty.
    pub(crate) async fn ack(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        jobs: &[(String, u64, String)],
    ) -> Result<AckOutcome> {
        let mut inv = SCRIPTS.ack.prepare_invoke();
        inv.key(&keys.active)
            .key(&keys.completed)
            .key(&keys.stats)
            .key(&keys.limits)
            .key(&keys.pending)
            .key(&keys.wake);
        inv.arg(&keys.job_prefix)
            .arg(retention.keep_ms())
            .arg(retention.completed_max);
        for (id, fence, result) in jobs {
            inv.arg(id).arg(fence).arg(result);
        }
        let reply: Vec<Value> = inv.invoke_async(&mut self.conn.clone()).await?;
        ack_outcome(&reply)
    }

    /// [`ack`](Self::ack), then `WAIT` for `replicas` replicas, both in one pipeline on `conn`
    /// (so that the WAIT counts this very ack, even if the connection moves to another primary
    /// in between). Fewer replicas in time: an `Unavailable` error, and the caller acks again.
    pub(crate) async fn ack_replicated(
        &self,
        conn: &mut Conn,
        keys: &QueueKeys,
        retention: &Retention,
        jobs: &[(String, u64, String)],
        replicas: u32,
        timeout: Duration,
    ) -> Result<AckOutcome> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(SCRIPTS.ack.get_hash())
            .arg(6)
            .arg(&keys.active)
            .arg(&keys.completed)
            .arg(&keys.stats)
            .arg(&keys.limits)
            .arg(&keys.pending)
            .arg(&keys.wake)
            .arg(&keys.job_prefix)
            .arg(retention.keep_ms())
            .arg(retention.completed_max);
        for (id, fence, result) in jobs {
            evalsha.arg(id).arg(fence).arg(result);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(evalsha)
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
        let answer: redis::RedisResult<(Vec<Value>, i64)> = pipe.query_async(conn).await;
        let (reply, reached) = match answer {
            Err(e)
                if e.clone()
                    .into_server_errors()
                    .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "NOSCRIPT")) =>
            {
                // A new primary (after a failover or restart) without the script yet.
                SCRIPTS.ack.load_async(conn).await?;
                pipe.query_async(conn).await?
            }
            other => other?,
        };
        if reached < i64::from(replicas) {
            return Err(Error::new(
                crate::ErrorKind::Unavailable,
                format!(
                    "an ack reached {reached} of {replicas} replicas within {timeout:?}; the \
                     primary may be cut off, so it is sent again"
                ),
            ));
        }
        ack_outcome(&reply)
    }

    pub(crate) async fn fail(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        id: &str,
        fence: u64,
        error: &str,
        mode: FailMode,
    ) -> Result<FailOutcome> {
        let (mode_name, delay) = match mode {
            FailMode::Retry(d) => ("retry", d.as_millis() as u64),
            FailMode::Kill => ("kill", 0),
            FailMode::Cancel => ("cancel", 0),
        };
        let answer: String = SCRIPTS
            .fail
            .key(&keys.active)
            .key(&keys.retry)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.stats)
            .key(&keys.wake)
            .key(&keys.limits)
            .key(&keys.pending)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(fence)
            .arg(error)
            .arg(mode_name)
            .arg(delay)
            .arg(retention.dead_max)
            .arg(retention.keep_ms().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match answer.as_str() {
            "retry" => FailOutcome::Retry,
            "dead" => FailOutcome::Dead,
            "cancelled" => FailOutcome::Cancelled,
            _ => FailOutcome::Stale,
        })
    }

    pub(crate) async fn renew(
        &self,
        keys: &QueueKeys,
        lease: Duration,
        jobs: &[(String, u64)],
    ) -> Result<Renewed> {
        let mut inv = SCRIPTS.renew.prepare_invoke();
        inv.key(&keys.active)
            .arg(&keys.job_prefix)
            .arg(lease.as_millis() as u64);
        for (id, fence) in jobs {
            inv.arg(id).arg(fence);
        }
        let (lease_until_ms, lost, cancel_requested): (i64, Vec<String>, Vec<String>) =
            inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(Renewed {
            lease_until_ms,
            lost,
            cancel_requested,
        })
    }

    pub(crate) async fn recover(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        limit: usize,
    ) -> Result<Recovered> {
        let (to_pending, to_dead, to_cancelled): (u64, u64, u64) = SCRIPTS
            .recover
            .key(&keys.active)
            .key(&keys.pending)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.seq)
            .key(&keys.wake)
            .key(&keys.stats)
            .key(&keys.limits)
            .arg(&keys.job_prefix)
            .arg(limit)
            .arg(retention.dead_max)
            .arg(retention.keep_ms().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Recovered {
            to_pending,
            to_dead,
            to_cancelled,
        })
    }

    /// Hand jobs back to pending without charging the attempt.
    pub(crate) async fn requeue(&self, keys: &QueueKeys, jobs: &[(String, u64)]) -> Result<u64> {
        let mut inv = SCRIPTS.requeue.prepare_invoke();
        inv.key(&keys.active)
            .key(&keys.pending)
            .key(&keys.seq)
            .key(&keys.wake);
        inv.arg(&keys.job_prefix);
        for (id, fence) in jobs {
            inv.arg(id).arg(fence);
        }
        Ok(inv.invoke_async(&mut self.conn.clone()).await?)
    }

    pub(crate) async fn cancel(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        id: &str,
    ) -> Result<CancelOutcome> {
        let answer: String = SCRIPTS
            .cancel
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.cancelled)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(retention.keep_ms().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        match answer.as_str() {
            "cancelled" => Ok(CancelOutcome::Cancelled),
            "cancelling" => Ok(CancelOutcome::Cancelling),
            "notfound" => Err(job_not_found(&keys.name, id)),
            state => Err(Error::conflict(format!(
                "job {id} is {state}; only scheduled, pending, retry or active jobs can be \
                 cancelled"
            ))),
        }
    }

    /// Delete a job that is not active; answers the state it had.
    pub(crate) async fn delete(&self, keys: &QueueKeys, id: &str) -> Result<JobState> {
        let answer: String = SCRIPTS
            .delete
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.completed)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .arg(&keys.job_prefix)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match answer.as_str() {
            "notfound" => Err(job_not_found(&keys.name, id)),
            "active" => Err(Error::conflict(format!(
                "job {id} is active; cancel it first, then delete it"
            ))),
            state => state.parse(),
        }
    }

    /// Run a dead, cancelled, retry or scheduled job now; answers the state it had.
    pub(crate) async fn retry(&self, keys: &QueueKeys, id: &str) -> Result<JobState> {
        let answer: String = SCRIPTS
            .retry
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.seq)
            .key(&keys.wake)
            .arg(&keys.job_prefix)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        use JobState::*;
        previous_state(
            &answer,
            keys,
            id,
            &[Dead, Cancelled, Retry, Scheduled],
            "retried",
        )
    }

    /// Move a waiting job to a new due time; answers the state it had.
    pub(crate) async fn reschedule(
        &self,
        keys: &QueueKeys,
        id: &str,
        due: &Due,
    ) -> Result<JobState> {
        let (at_ms, delay_ms) = due_args(due);
        let answer: String = SCRIPTS
            .reschedule
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.seq)
            .key(&keys.wake)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(at_ms)
            .arg(delay_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        use JobState::*;
        previous_state(
            &answer,
            keys,
            id,
            &[Scheduled, Pending, Retry],
            "rescheduled",
        )
    }

    /// Send a waiting job to dead by hand; answers the state it had.
    pub(crate) async fn kill(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        id: &str,
    ) -> Result<JobState> {
        let answer: String = SCRIPTS
            .kill
            .key(&keys.pending)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.dead)
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(retention.dead_max)
            .invoke_async(&mut self.conn.clone())
            .await?;
        use JobState::*;
        previous_state(
            &answer,
            keys,
            id,
            &[Waiting, Scheduled, Pending, Retry],
            "killed",
        )
    }

    /// Pause (`true`) or resume (`false`) a queue; resuming wakes an idle worker. Answers
    /// whether the queue was paused before.
    pub(crate) async fn set_paused(&self, keys: &QueueKeys, paused: bool) -> Result<bool> {
        let before: i64 = SCRIPTS
            .queue_pause
            .key(&keys.paused)
            .key(&keys.wake)
            .arg(u8::from(paused))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(before == 1)
    }

    /// Delete up to `limit` jobs in `state` (not active); answers how many index entries went
    /// (0 when the index is empty).
    pub(crate) async fn purge_batch(
        &self,
        keys: &QueueKeys,
        state: JobState,
        limit: usize,
    ) -> Result<u64> {
        if state == JobState::Active {
            return Err(purge_active(&keys.name));
        }
        Ok(SCRIPTS
            .queue_purge
            .key(keys.index(state))
            .arg(&keys.job_prefix)
            .arg(state.as_str())
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Drop finished jobs past their retention; answers how many index entries went.
    /// `trim` (memory is tight): drop completed and cancelled jobs whatever their age, oldest
    /// first; dead jobs still go by their own retention, since they wait for a person.
    pub(crate) async fn janitor(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        limit: usize,
        trim: bool,
    ) -> Result<u64> {
        Ok(SCRIPTS
            .janitor
            .key(&keys.completed)
            .key(&keys.cancelled)
            .key(&keys.dead)
            .arg(&keys.job_prefix)
            .arg(if trim { 0 } else { retention.keep_ms() })
            .arg(retention.dead_for.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }
}

fn ack_outcome(reply: &[Value]) -> Result<AckOutcome> {
    if reply.len() < 2 {
        return Err(Error::corrupt("ack script returned an unexpected reply"));
    }
    Ok(AckOutcome {
        acked: int(&reply[0])? as u64,
        again: int(&reply[1])? as u64,
        stale: reply[2..].iter().map(text).collect::<Result<_>>()?,
    })
}

fn purge_active(queue: &str) -> Error {
    Error::invalid(format!(
        "active jobs of queue {queue} cannot be purged; cancel them, or pause the queue and let \
         them finish"
    ))
}

/// The command that wakes a queue's idle workers, for transactions outside scripts: the same
/// as `wake` in prelude.lua.
pub(crate) fn wake_command(keys: &QueueKeys) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&keys.wake)
        .arg("MAXLEN")
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

/// Read the answer of a script that moves one job out of some states: the state the job had
/// (it moved), 'notfound', or a state outside `allowed` (refused; nothing changed).
fn previous_state(
    answer: &str,
    keys: &QueueKeys,
    id: &str,
    allowed: &[JobState],
    done: &str,
) -> Result<JobState> {
    if answer == "notfound" {
        return Err(job_not_found(&keys.name, id));
    }
    let state: JobState = answer.parse()?;
    if allowed.contains(&state) {
        return Ok(state);
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    let (last, rest) = names.split_last().expect("at least one allowed state");
    let mut message = format!(
        "job {id} is {state}; only {} or {last} jobs can be {done}",
        rest.join(", ")
    );
    if state == JobState::Active {
        message.push_str("; to stop a running job, cancel it");
    }
    Err(Error::conflict(message))
}

#[cfg(test)]
use crate::ErrorKind;
#[cfg(test)]
use crate::job::{Enqueued, NewJob};
#[cfg(test)]
use crate::job::{JobInfo, ms_to_timestamp};
#[cfg(test)]
use crate::queue::QueueCounts;
#[cfg(test)]
use message::Envelope;
#[cfg(test)]
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifecycle_tests;

#[cfg(test)]
mod unique_tests;

#[cfg(test)]
mod enqueue_tests;

#[cfg(test)]
mod limits_tests;

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
mod flow_prop_tests;
