//! Registering and controlling schedules from a [`Client`].

use super::{ScheduleInfo, ScheduleSpec, Upserted};
use crate::job::{Enqueued, NewJob};
use crate::{Client, Error, Result};
use jiff::Timestamp;

impl Client {
    /// Create or change a schedule. The same spec again changes nothing (safe to call on
    /// every boot of every node); a changed spec gets a new version and takes effect on every
    /// node at once.
    pub async fn upsert_schedule(&self, spec: &ScheduleSpec) -> Result<Upserted> {
        let cron = spec.validate()?;
        let now = self.broker.now_ms().await?;
        let now_ts = Timestamp::from_millisecond(now)
            .map_err(|e| Error::corrupt("Redis time").with_source(e))?;
        let first = cron
            .next_after(now_ts)
            .map(|t| t.as_millisecond())
            .unwrap_or(-1);
        let (upserted, _, _) = self.broker.upsert_schedule(spec, first, now).await?;
        // Its jobs are created by scripts, not by an enqueue: register the queue here so that
        // a queue fed only by schedules is listed (stats, `tickq job ID`, metrics) like others.
        self.broker.register_queue(&spec.queue).await?;
        Ok(upserted)
    }

    /// Remove a schedule. Jobs it already created are left alone.
    pub async fn remove_schedule(&self, name: &str) -> Result<()> {
        self.broker.remove_schedule(name).await
    }

    /// Stop a schedule from firing until it is resumed. Ticks that pass while paused are
    /// handled by its catch-up policy when it resumes.
    pub async fn pause_schedule(&self, name: &str) -> Result<()> {
        self.broker.set_schedule_paused(name, true).await
    }

    /// Let a paused schedule fire again.
    pub async fn resume_schedule(&self, name: &str) -> Result<()> {
        self.broker.set_schedule_paused(name, false).await
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

    /// Every schedule, sorted by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
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

    /// Create the schedule's jobs now, outside its timetable (its next tick is unchanged).
    /// The jobs' ids carry Redis' current time in ms, so a repeated trigger within the same
    /// millisecond creates nothing twice.
    pub async fn trigger_schedule(&self, name: &str) -> Result<Vec<Enqueued>> {
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
        self.enqueue_bulk(jobs).await
    }
}
