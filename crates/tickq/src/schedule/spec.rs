//! The schedule model: what a schedule is (its spec and tasks, overlap and catch-up
//! policies) and what the storage layer answers about one. Plain data, like `job.rs`: the
//! storage layer (`broker/schedules.rs`) and the runtime [`Scheduler`](super::Scheduler) both
//! depend on it, not on each other's modules.

use super::cron::CronSchedule;
use crate::job::{PRIORITY_MAX, PRIORITY_MIN, validate_queue_name};
use crate::{Error, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What a tick does while jobs of the previous tick are still waiting or running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum Overlap {
    /// Fire anyway (the default).
    #[default]
    Allow,
    /// Skip the tick (counted as skipped). "Still running" is lease-backed: the jobs of a dead
    /// runner are recovered and finish, so a schedule is never blocked for good.
    Forbid,
    /// Cancel the previous tick's jobs (a running one is asked to stop), then fire.
    Replace,
}

/// Which missed ticks fire when a schedule is found late (every node was down, say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum Catchup {
    /// Fire only ticks found within [`MISFIRE_GRACE`] of their time; count the rest skipped.
    Skip,
    /// Fire the most recent due tick once; count the older ones skipped (the default).
    #[default]
    Latest,
    /// Fire every missed tick, up to [`MAX_CATCHUP`] (the most recent ones); count the rest
    /// skipped.
    All,
}

/// How late a tick may be found and still count as on time for [`Catchup::Skip`].
pub const MISFIRE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// The most ticks one catch-up fires with [`Catchup::All`].
pub const MAX_CATCHUP: usize = 100;

/// One job a tick creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// The job kind.
    pub kind: String,
    /// The job payload. Default: `null`.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Attempts before dead. Default: the job default (25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit in ms. Default: the worker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Priority within the queue. Default: 0.
    #[serde(default)]
    pub priority: i32,
}

impl Task {
    /// A task of `kind` with `payload`.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Task {
        Task {
            kind: kind.into(),
            payload,
            max_attempts: None,
            timeout_ms: None,
            priority: 0,
        }
    }
}

/// A schedule: when (cron expression and time zone), where (queue), what (tasks), and the
/// overlap and catch-up policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique name across all queues.
    pub name: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// The cron expression (5 or 6 fields, a macro, or `@every DUR`).
    pub cron: String,
    /// IANA time zone the expression is read in. Default: `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Default: [`Overlap::Allow`].
    #[serde(default)]
    pub overlap: Overlap,
    /// Default: [`Catchup::Latest`].
    #[serde(default)]
    pub catchup: Catchup,
    /// The jobs each tick creates (at least one).
    pub tasks: Vec<Task>,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl ScheduleSpec {
    /// A schedule named `name` that feeds `queue` on `cron` (UTC), with no tasks yet.
    pub fn new(name: impl Into<String>, queue: impl Into<String>, cron: impl Into<String>) -> Self {
        ScheduleSpec {
            name: name.into(),
            queue: queue.into(),
            cron: cron.into(),
            timezone: utc(),
            overlap: Overlap::default(),
            catchup: Catchup::default(),
            tasks: Vec::new(),
        }
    }

    /// Add a task.
    pub fn task(mut self, task: Task) -> Self {
        self.tasks.push(task);
        self
    }

    /// Read the expression in this IANA time zone.
    pub fn timezone(mut self, zone: impl Into<String>) -> Self {
        self.timezone = zone.into();
        self
    }

    /// Set the overlap policy.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// Set the catch-up policy.
    pub fn catchup(mut self, catchup: Catchup) -> Self {
        self.catchup = catchup;
        self
    }

    /// Check the spec; answers the parsed expression.
    pub fn validate(&self) -> Result<CronSchedule> {
        let bad_char = |c: char| c.is_control() || c.is_whitespace() || c == ':';
        if self.name.is_empty() || self.name.len() > 128 || self.name.chars().any(bad_char) {
            return Err(Error::invalid(format!(
                "invalid schedule name {:?}: use 1 to 128 printable characters without spaces \
                 or ':'",
                self.name
            )));
        }
        validate_queue_name(&self.queue)?;
        if self.tasks.is_empty() {
            return Err(Error::invalid(format!(
                "schedule {}: needs at least one task",
                self.name
            )));
        }
        for task in &self.tasks {
            if task.kind.is_empty() {
                return Err(Error::invalid(format!(
                    "schedule {}: a task has no kind",
                    self.name
                )));
            }
            if task.max_attempts == Some(0) {
                return Err(Error::invalid(format!(
                    "schedule {}: max attempts must be at least 1",
                    self.name
                )));
            }
            if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&task.priority) {
                return Err(Error::invalid(format!(
                    "schedule {}: priority {} is out of range {PRIORITY_MIN}..={PRIORITY_MAX}",
                    self.name, task.priority
                )));
            }
        }
        CronSchedule::parse(&self.cron, &self.timezone)
            .map_err(|e| Error::invalid(format!("schedule {}: {e}", self.name)))
    }

    /// The deterministic id of task `index` of the tick at `tick_ms`.
    pub fn job_id(&self, tick_ms: i64, index: usize) -> String {
        format!("cron:{}:{tick_ms}:{index}", self.name)
    }

    pub(crate) fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a schedule spec serialises")
    }
}

/// The answer to [`crate::Client::upsert_schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Upserted {
    /// A new schedule.
    Created,
    /// The spec changed: a new version, effective on every node at once.
    Updated,
    /// The same spec was already there: nothing changed.
    Unchanged,
}

impl Upserted {
    /// `created`, `updated` or `unchanged` (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Upserted::Created => "created",
            Upserted::Updated => "updated",
            Upserted::Unchanged => "unchanged",
        }
    }
}

/// A schedule as stored, with its firing state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// The spec.
    pub spec: ScheduleSpec,
    /// Grows with every change of the spec.
    pub version: u64,
    /// The next tick, if the expression has one.
    pub next_at: Option<Timestamp>,
    /// The latest tick dealt with (fired or skipped).
    pub watermark: Option<Timestamp>,
    /// When a tick last created jobs.
    pub last_fired_at: Option<Timestamp>,
    /// Ticks fired.
    pub fired: u64,
    /// Ticks skipped (by the catch-up or the overlap policy).
    pub skipped: u64,
    /// Paused schedules do not fire.
    pub paused: bool,
}
