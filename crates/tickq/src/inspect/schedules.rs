//! Schedules: list them with their next fire times, trigger, pause, resume, remove.
//! (Creating one is the producer's [`crate::Client::upsert_schedule`].)

use super::Inspector;
use crate::job::{Enqueued, NewJob};
use crate::schedule::{Catchup, Overlap, ScheduleInfo, Task};
use crate::{Error, Result};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

/// One schedule as people read it: `tickq cron ls --json`, `GET /api/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleEntry {
    /// The schedule's name.
    pub name: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// The cron expression.
    pub schedule: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// What a tick does while the previous one still runs.
    pub overlap: Overlap,
    /// Which missed ticks fire.
    pub catchup: Catchup,
    /// The jobs each tick creates.
    pub tasks: Vec<Task>,
    /// Grows with every change of the spec.
    pub version: u64,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// The next tick on the schedule's own wall clock (RFC 3339 with that zone's offset).
    pub next_at: Option<String>,
    /// The next tick in UTC.
    pub next_at_utc: Option<Timestamp>,
    /// When a tick last created jobs.
    pub last_fired_at: Option<Timestamp>,
    /// Ticks fired.
    pub fired: u64,
    /// Ticks skipped (by the catch-up or the overlap policy).
    pub skipped: u64,
}

impl ScheduleEntry {
    /// The entry of a stored schedule.
    pub fn new(info: &ScheduleInfo) -> ScheduleEntry {
        let spec = &info.spec;
        // A zone this binary's tz database does not know (stored by a node with a newer one)
        // is shown in UTC.
        let tz = TimeZone::get(&spec.timezone).unwrap_or(TimeZone::UTC);
        ScheduleEntry {
            name: spec.name.clone(),
            queue: spec.queue.clone(),
            schedule: spec.cron.clone(),
            timezone: spec.timezone.clone(),
            overlap: spec.overlap,
            catchup: spec.catchup,
            tasks: spec.tasks.clone(),
            version: info.version,
            paused: info.paused,
            next_at: info
                .next_at
                .map(|t| t.display_with_offset(tz.to_offset(t)).to_string()),
            next_at_utc: info.next_at,
            last_fired_at: info.last_fired_at,
            fired: info.fired,
            skipped: info.skipped,
        }
    }
}

/// Every schedule, sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// The schedules.
    pub schedules: Vec<ScheduleEntry>,
}

/// The answer to pausing or resuming a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchedulePaused {
    /// The schedule.
    pub name: String,
    /// Whether it is paused now.
    pub paused: bool,
}

/// The answer to removing a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRemoved {
    /// The schedule.
    pub name: String,
    /// Always true.
    pub removed: bool,
}

/// The jobs a manual trigger created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleTriggered {
    /// The schedule.
    pub name: String,
    /// One per task.
    pub jobs: Vec<Enqueued>,
}

impl Inspector {
    /// Every schedule with its firing state, sorted by name.
    pub async fn schedules(&self) -> Result<ScheduleList> {
        let infos = self.schedule_infos().await?;
        Ok(ScheduleList {
            schedules: infos.iter().map(ScheduleEntry::new).collect(),
        })
    }

    /// Every stored schedule, sorted by name.
    pub async fn schedule_infos(&self) -> Result<Vec<ScheduleInfo>> {
        let mut index: Vec<(String, String)> =
            self.broker.schedule_index().await?.into_iter().collect();
        index.sort();
        let mut out = Vec::new();
        for (name, queue) in index {
            if let Some(stored) = self
                .broker
                .schedule(&self.broker.keys(&queue), &name)
                .await?
            {
                out.push(stored.info);
            }
        }
        Ok(out)
    }

    /// One schedule with its firing state.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleInfo> {
        let queue = self.broker.schedule_queue(name).await?;
        let stored = self
            .broker
            .schedule(&self.broker.keys(&queue), name)
            .await?;
        stored
            .map(|s| s.info)
            .ok_or_else(|| Error::not_found(format!("no schedule named {name}")))
    }

    /// Remove a schedule. Jobs it already created are left alone.
    pub async fn remove_schedule(&self, name: &str) -> Result<ScheduleRemoved> {
        self.broker.remove_schedule(name).await?;
        Ok(ScheduleRemoved {
            name: name.to_owned(),
            removed: true,
        })
    }

    /// Stop a schedule from firing until it is resumed. Ticks that pass while paused are
    /// handled by its catch-up policy when it resumes.
    pub async fn pause_schedule(&self, name: &str) -> Result<SchedulePaused> {
        self.broker.set_schedule_paused(name, true).await?;
        Ok(SchedulePaused {
            name: name.to_owned(),
            paused: true,
        })
    }

    /// Let a paused schedule fire again.
    pub async fn resume_schedule(&self, name: &str) -> Result<SchedulePaused> {
        self.broker.set_schedule_paused(name, false).await?;
        Ok(SchedulePaused {
            name: name.to_owned(),
            paused: false,
        })
    }

    /// Create the schedule's jobs now, outside its timetable (its next tick is unchanged).
    /// The jobs' ids carry Redis' current time in ms, so a repeated trigger within the same
    /// millisecond creates nothing twice.
    pub async fn trigger_schedule(&self, name: &str) -> Result<ScheduleTriggered> {
        let spec = self.schedule(name).await?.spec;
        let now = self.broker.now_ms().await?;
        let jobs = spec
            .tasks
            .iter()
            .enumerate()
            .map(|(i, task)| {
                let mut job = NewJob::new(&spec.queue, &task.kind)
                    .id(format!("cron:{}:manual-{now}:{i}", spec.name))
                    .payload(task.payload.clone())
                    .priority(task.priority)
                    .meta("cron", &spec.name)
                    .meta("scheduled_at", now.to_string());
                if let Some(n) = task.max_attempts {
                    job = job.max_attempts(n);
                }
                if let Some(ms) = task.timeout_ms {
                    job = job.timeout(std::time::Duration::from_millis(ms));
                }
                job
            })
            .collect();
        Ok(ScheduleTriggered {
            name: name.to_owned(),
            jobs: self.broker.enqueue(jobs).await?,
        })
    }
}
