//! The job model: what a producer enqueues ([`NewJob`]), what an inspector reads ([`JobInfo`]),
//! and the states a job moves through ([`JobState`]).

use crate::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where a job is in its life.
///
/// A workflow step with unfinished parents is `waiting` (docs/workflows.md) until its last
/// parent ends; then `scheduled` (due later) → `pending` (ready) → `active` (leased by one worker) → `completed`;
/// a failed attempt goes to `retry` (waiting for its backoff) and back to `pending`, or to `dead`
/// when it gives up; `cancelled` is final unless retried by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum JobState {
    /// A workflow step whose parents have not all ended yet; no worker claims it.
    Waiting,
    /// Due at a later time.
    Scheduled,
    /// Ready to run; waiting for a worker.
    Pending,
    /// Leased by a worker and running.
    Active,
    /// Failed; waiting for its backoff before the next attempt.
    Retry,
    /// Gave up (attempts used up, killed, or undecodable). Kept, capped, retryable by hand.
    Dead,
    /// Finished successfully. Kept for the retention period.
    Completed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Waiting,
        JobState::Scheduled,
        JobState::Pending,
        JobState::Active,
        JobState::Retry,
        JobState::Dead,
        JobState::Completed,
        JobState::Cancelled,
    ];

    /// The state's name as used in Redis, the CLI and the HTTP API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Scheduled => "scheduled",
            JobState::Pending => "pending",
            JobState::Active => "active",
            JobState::Retry => "retry",
            JobState::Dead => "dead",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has reached an end (completed, dead or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Dead | JobState::Completed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = Error;

    fn from_str(s: &str) -> Result<JobState> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown job state {s:?}; expected one of: waiting scheduled pending active retry \
                 dead completed cancelled"
                ))
            })
    }
}

/// Lowest allowed priority.
pub const PRIORITY_MIN: i32 = -1000;
/// Highest allowed priority.
pub const PRIORITY_MAX: i32 = 1000;
/// Default number of attempts before a job goes to `dead`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;
const MAX_NAME_LEN: usize = 128;
const MAX_ID_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Due {
    Now,
    In(Duration),
    At(Timestamp),
}

/// A job to enqueue, built with setters; every setter's default is stated on it.
///
/// ```
/// use tickq::NewJob;
/// use std::time::Duration;
///
/// let job = NewJob::new("emails", "send_welcome")
///     .payload(serde_json::json!({"user": 42}))
///     .delay(Duration::from_secs(30))
///     .max_attempts(5);
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) id: Option<String>,
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) payload: serde_json::Value,
    pub(crate) due: Due,
    pub(crate) max_attempts: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) priority: i32,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) unique: Option<Unique>,
    pub(crate) shard_key: Option<String>,
    /// The shard of a sharded queue this job was sent to by an enqueue that failed (see
    /// [`PartialEnqueue`]): enqueued again, it goes there and nowhere else.
    pub(crate) shard: Option<u32>,
}

/// How a job is kept unique (see [`NewJob::unique_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unique {
    pub(crate) ttl: Duration,
    /// The caller's key; `None`: derived from the job's kind and payload.
    pub(crate) key: Option<String>,
}

impl Unique {
    /// The key as stored (under the queue's unique prefix): `key:<caller's key>`, or
    /// `auto:<sha256 of kind and canonical payload>`, so the two never collide.
    pub(crate) fn key(&self, job: &NewJob) -> String {
        use sha2::{Digest, Sha256};
        match &self.key {
            Some(key) => format!("key:{key}"),
            None => {
                let mut canonical = String::new();
                write_canonical(&job.payload, &mut canonical);
                let mut hash = Sha256::new();
                hash.update(job.kind.as_bytes());
                hash.update([0u8]);
                hash.update(canonical.as_bytes());
                let digest = hash.finalize();
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("auto:{hex}")
            }
        }
    }
}

/// JSON with object keys sorted at every level, so equal payloads give equal text whatever
/// order their keys were built in (serde_json keeps insertion order when the application
/// enables its `preserve_order` feature).
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl NewJob {
    /// A job of `kind` (the handler that runs it) on `queue`.
    pub fn new(queue: impl Into<String>, kind: impl Into<String>) -> NewJob {
        NewJob {
            id: None,
            queue: queue.into(),
            kind: kind.into(),
            payload: serde_json::Value::Null,
            due: Due::Now,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout: None,
            priority: 0,
            meta: BTreeMap::new(),
            unique: None,
            shard_key: None,
            shard: None,
        }
    }

    /// The job's arguments as JSON. Default: `null`.
    pub fn payload(mut self, payload: serde_json::Value) -> NewJob {
        self.payload = payload;
        self
    }

    /// The job's arguments, serialised to JSON from any `Serialize` value.
    pub fn payload_of<T: Serialize>(self, payload: &T) -> Result<NewJob> {
        Ok(self.payload(serde_json::to_value(payload)?))
    }

    /// The job id. Default: a new UUID v7. Enqueueing an id that exists does not create a
    /// second job (see [`crate::Client::enqueue`]).
    pub fn id(mut self, id: impl Into<String>) -> NewJob {
        self.id = Some(id.into());
        self
    }

    /// The job's id: the one given with [`id`](NewJob::id), or the one an enqueue generated
    /// for it (a job handed back in [`PartialEnqueue::unconfirmed`] keeps it, so enqueueing
    /// it again cannot create it twice). `None` for a new job without one.
    pub fn assigned_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Run after this delay (measured by Redis' clock). Default: now.
    pub fn delay(mut self, delay: Duration) -> NewJob {
        self.due = if delay.is_zero() {
            Due::Now
        } else {
            Due::In(delay)
        };
        self
    }

    /// Run at this time (compared with Redis' clock). Default: now.
    pub fn at(mut self, at: Timestamp) -> NewJob {
        self.due = Due::At(at);
        self
    }

    /// How many attempts before the job goes to `dead`. Default: 25.
    pub fn max_attempts(mut self, n: u32) -> NewJob {
        self.max_attempts = n;
        self
    }

    /// Limit on one attempt's run time; past it the attempt fails and is retried. Default: the
    /// worker's job timeout.
    pub fn timeout(mut self, timeout: Duration) -> NewJob {
        self.timeout = Some(timeout);
        self
    }

    /// Priority within the queue, from -1000 to 1000: higher runs first, FIFO among equals.
    /// Default: 0.
    pub fn priority(mut self, priority: i32) -> NewJob {
        self.priority = priority;
        self
    }

    /// A string tag carried with the job and shown by the inspector. Default: none.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> NewJob {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Keep the job unique for `ttl`: while a job of the same kind and payload (or the same
    /// [`unique_key`](NewJob::unique_key)) is waiting or running in the queue, enqueueing
    /// another creates nothing and answers the existing job ([`crate::ErrorKind::AlreadyExists`]
    /// from [`crate::Client::enqueue`], `duplicate: true` from
    /// [`crate::Client::enqueue_bulk`]). The reservation ends when the job ends (completed,
    /// dead, cancelled or deleted) or when `ttl` has passed since the enqueue, whichever is
    /// first; a retry does not end it. Default: not unique.
    pub fn unique_for(mut self, ttl: Duration) -> NewJob {
        let key = self.unique.take().and_then(|u| u.key);
        self.unique = Some(Unique { ttl, key });
        self
    }

    /// The key that [`unique_for`](NewJob::unique_for) compares, instead of the kind and
    /// payload: 1 to 256 printable characters, compared within the queue. Needs `unique_for`.
    pub fn unique_key(mut self, key: impl Into<String>) -> NewJob {
        let ttl = self.unique.take().map_or(Duration::ZERO, |u| u.ttl);
        self.unique = Some(Unique {
            ttl,
            key: Some(key.into()),
        });
        self
    }

    /// On a sharded queue, send the job to the shard this key maps to, so that jobs with the
    /// same key stay in one shard and keep their order among themselves (1 to 256 printable
    /// characters). A job id given with [`id`](NewJob::id) is then checked for existence in
    /// that shard only. Not allowed with [`unique_for`](NewJob::unique_for): a unique job goes
    /// to the shard of its unique key, where the uniqueness check happens. Ignored on a queue
    /// without shards. Default: none (round robin, or by unique key, or by job id).
    pub fn shard_key(mut self, key: impl Into<String>) -> NewJob {
        self.shard_key = Some(key.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(key) = &self.shard_key {
            if key.is_empty() || key.len() > MAX_ID_LEN || key.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "invalid shard key {key:?}: use 1 to {MAX_ID_LEN} printable characters"
                )));
            }
            if self.unique.is_some() {
                return Err(Error::invalid(
                    "a unique job is routed to the shard of its unique key: set unique_key (to \
                     the shard key, if you want both) instead of shard_key",
                ));
            }
        }
        if let Some(unique) = &self.unique {
            if unique.ttl.is_zero() {
                return Err(Error::invalid(
                    "a unique job needs a time to stay unique: set unique_for to more than zero",
                ));
            }
            if let Some(key) = &unique.key
                && (key.is_empty() || key.len() > MAX_ID_LEN || key.chars().any(char::is_control))
            {
                return Err(Error::invalid(format!(
                    "invalid unique key {key:?}: use 1 to {MAX_ID_LEN} printable characters"
                )));
            }
        }
        // The client has checked the name the caller gave and may have put a shard's name
        // (`queue#i`, see shard.rs) in its place.
        if !is_shard_name(&self.queue) {
            validate_queue_name(&self.queue)?;
        }
        validate_name("job kind", &self.kind)?;
        if let Some(id) = &self.id {
            validate_job_id(id)?;
        }
        if self.max_attempts == 0 {
            return Err(Error::invalid("max attempts must be at least 1"));
        }
        if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&self.priority) {
            return Err(Error::invalid(format!(
                "priority {} is out of range {PRIORITY_MIN}..={PRIORITY_MAX}",
                self.priority
            )));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid("timeout must be greater than zero"));
        }
        Ok(())
    }
}

/// Whether `name` is a shard's queue name (`queue#i` or `queue#i.n`) of a valid queue name.
pub(crate) fn is_shard_name(name: &str) -> bool {
    let Some((queue, suffix)) = name.split_once('#') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let suffix_ok = match suffix.split_once('.') {
        Some((i, n)) => digits(i) && digits(n),
        None => digits(suffix),
    };
    suffix_ok && validate_queue_name(queue).is_ok()
}

/// Check a queue name: 1 to 128 characters of letters, digits, `_`, `-`, `.` and `:`, not
/// starting with `lock:`. (Braces are excluded because queue names are Redis Cluster hash
/// tags; `lock:` because the keys of lock `x` carry the hash tag `{lock:x}`, and a queue of
/// that name would share its fence counter.)
pub fn validate_queue_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(ok_char) {
        return Err(Error::invalid(format!(
            "invalid queue name {name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '_', '-', '.' or ':'"
        )));
    }
    if name.starts_with("lock:") {
        return Err(Error::invalid(format!(
            "invalid queue name {name:?}: names starting with \"lock:\" are kept for locks"
        )));
    }
    Ok(())
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "invalid {what} {name:?}: use 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Check a caller-given job id: 1 to 256 printable characters without spaces.
pub fn validate_job_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::invalid(format!(
            "invalid job id {id:?}: use 1 to {MAX_ID_LEN} printable characters without spaces"
        )));
    }
    Ok(())
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Enqueued {
    /// The job id.
    pub id: String,
    /// The queue.
    pub queue: String,
    /// The job's state after the call (for an existing job: its current state).
    pub state: JobState,
    /// False when nothing was created: a job with this id existed already, or (see
    /// `duplicate`) another job holds the unique key.
    pub created: bool,
    /// True when another job holds the unique key: `id` and `state` are that job's.
    pub duplicate: bool,
}

/// What an enqueue that failed part way did: carried by its [`Error`](crate::Error), see
/// [`Error::partial_enqueue`](crate::Error::partial_enqueue).
///
/// Every job had its id fixed before anything was sent (ids tickq generates included), and
/// each chunk of jobs is written atomically, so every job is either confirmed here or in
/// `unconfirmed`. Enqueueing `unconfirmed` again is safe: a job that went in although its
/// answer was lost (its chunk was in flight when the connection broke) is answered
/// `created: false`, and is not created twice. A job of a sharded queue is handed back under
/// the queue name the caller gave and goes to the same shard again.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PartialEnqueue {
    /// The jobs Redis confirmed, by their index in the call, in order.
    pub enqueued: Vec<(usize, Enqueued)>,
    /// Every other job, by its index in the call, in order, each with its id set
    /// ([`NewJob::assigned_id`]): not sent, or sent with no answer.
    pub unconfirmed: Vec<(usize, NewJob)>,
}

/// Everything known about one job, as the inspector, CLI and HTTP API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct JobInfo {
    /// The job id.
    pub id: String,
    /// The queue.
    pub queue: String,
    /// The job kind (which handler runs it); empty when the job's data is unreadable.
    pub kind: String,
    /// The job's arguments.
    pub payload: serde_json::Value,
    /// Where the job is in its life.
    pub state: JobState,
    /// Attempts started so far (1 during the first run).
    pub attempt: u32,
    /// Attempts allowed before the job goes to dead.
    pub max_attempts: u32,
    /// Priority within the queue.
    pub priority: i32,
    /// Fencing token of the latest claim (grows with every claim).
    pub fence: u64,
    /// Per-attempt time limit, if the job sets one.
    pub timeout_ms: Option<u64>,
    /// When it was enqueued.
    pub created_at: Option<Timestamp>,
    /// When it was (or is) due to run.
    pub due_at: Option<Timestamp>,
    /// When its latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When it finished (completed, dead or cancelled).
    pub finished_at: Option<Timestamp>,
    /// When the current lease expires (active jobs).
    pub lease_until: Option<Timestamp>,
    /// The worker holding or last holding the job.
    pub worker: Option<String>,
    /// The latest error.
    pub last_error: Option<String>,
    /// The result of a completed job.
    pub result: Option<String>,
    /// A cancel was asked while the job is active.
    pub cancel_requested: bool,
    /// What the running handler last reported ([`crate::Job::progress`]); kept after it ends.
    pub progress: Option<Progress>,
    /// String tags carried with the job.
    pub meta: BTreeMap<String, String>,
    /// Why the job's stored data could not be read, if it could not.
    pub corrupt: Option<String>,
}

/// How far a running job has got, as its handler reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    /// From 0.0 (nothing done) to 1.0 (all done).
    pub value: f64,
    /// What the handler said, e.g. "copied 4 of 10 files".
    #[serde(default)]
    pub message: String,
}

pub(crate) fn ms_to_timestamp(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_names() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let bad = |j: NewJob| j.validate().unwrap_err().to_string();
        assert!(bad(NewJob::new("a{b}", "k")).contains("queue name"));
        assert!(bad(NewJob::new("", "k")).contains("queue name"));
        assert!(bad(NewJob::new("lock:nightly", "k")).contains("kept for locks"));
        assert!(bad(NewJob::new("q", "")).contains("job kind"));
        assert!(bad(NewJob::new("q", "k").id("a b")).contains("job id"));
        assert!(bad(NewJob::new("q", "k").max_attempts(0)).contains("max attempts"));
        assert!(bad(NewJob::new("q", "k").priority(1001)).contains("priority"));
        assert!(
            NewJob::new("q.v1:x", "k")
                .priority(-1000)
                .validate()
                .is_ok()
        );
    }
}
