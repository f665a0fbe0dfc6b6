//! The Redis side of schedules: upsert, fire, read, pause, remove.

use super::keys::{QueueKeys, SCHEDULES};
use super::scripts::SCRIPTS;
use super::value::{int, text};
use super::{Broker, Retention};
use crate::job::ms_to_timestamp;
use crate::schedule::spec::{ScheduleInfo, ScheduleSpec, Upserted};
use crate::{Error, Result};
use redis::{AsyncCommands, Value};
use std::collections::HashMap;

/// One job of a tick, ready for the fire script.
pub(crate) struct TickJob {
    pub(crate) id: String,
    pub(crate) data: String,
    pub(crate) priority: i32,
    pub(crate) max_attempts: u32,
    /// The tick the job belongs to (its tasks are spread over nodes).
    pub(crate) group: String,
}

/// What the fire script did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FireOutcome {
    Fired(u64),
    Overlap,
    Raced,
    Early,
    Paused,
    Gone,
}

/// A schedule's firing state as stored.
pub(crate) struct StoredSchedule {
    pub(crate) info: ScheduleInfo,
    pub(crate) next_ms: i64,
}

impl Broker {
    /// Redis' clock, ms.
    pub(crate) async fn now_ms(&self) -> Result<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Every schedule name and the queue it feeds.
    pub(crate) async fn schedule_index(&self) -> Result<HashMap<String, String>> {
        Ok(self.conn().hgetall(SCHEDULES).await?)
    }

    pub(crate) async fn upsert_schedule(
        &self,
        spec: &ScheduleSpec,
        first_ms: i64,
        now_ms: i64,
    ) -> Result<(Upserted, u64, i64)> {
        // A schedule that moves to another queue leaves the old one first.
        let previous: Option<String> = self.conn().hget(SCHEDULES, &spec.name).await?;
        if let Some(old_queue) = previous.filter(|q| *q != spec.queue) {
            self.remove_schedule_from(&self.keys(&old_queue), &spec.name)
                .await?;
        }
        let keys = self.keys(&spec.queue);
        let (answer, version, next): (String, u64, i64) = SCRIPTS
            .schedule_upsert
            .key(keys.schedule(&spec.name))
            .key(&keys.schedules_due)
            .arg(&spec.name)
            .arg(spec.canonical_json())
            .arg(first_ms)
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await?;
        let _: i64 = self.conn().hset(SCHEDULES, &spec.name, &spec.queue).await?;
        let upserted = match answer.as_str() {
            "created" => Upserted::Created,
            "updated" => Upserted::Updated,
            _ => Upserted::Unchanged,
        };
        Ok((upserted, version, next))
    }

    async fn remove_schedule_from(&self, keys: &QueueKeys, name: &str) -> Result<()> {
        // Blind writes to keys of one slot: MULTI keeps them together without reading first.
        let _: () = redis::pipe()
            .atomic()
            .del(keys.schedule(name))
            .ignore()
            .zrem(&keys.schedules_due, name)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Remove a schedule; `NotFound` when there is none of that name.
    pub(crate) async fn remove_schedule(&self, name: &str) -> Result<()> {
        let queue = self.schedule_queue(name).await?;
        self.remove_schedule_from(&self.keys(&queue), name).await?;
        let _: i64 = self.conn().hdel(SCHEDULES, name).await?;
        Ok(())
    }

    pub(crate) async fn schedule_queue(&self, name: &str) -> Result<String> {
        let queue: Option<String> = self.conn().hget(SCHEDULES, name).await?;
        queue.ok_or_else(|| Error::not_found(format!("no schedule named {name}")))
    }

    pub(crate) async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<()> {
        let keys = self.keys(&self.schedule_queue(name).await?);
        let set: i64 = SCRIPTS
            .schedule_pause
            .key(keys.schedule(name))
            .arg(if paused { 1 } else { 0 })
            .invoke_async(&mut self.conn())
            .await?;
        if set == 0 {
            return Err(Error::not_found(format!("no schedule named {name}")));
        }
        Ok(())
    }

    pub(crate) async fn schedule(
        &self,
        keys: &QueueKeys,
        name: &str,
    ) -> Result<Option<StoredSchedule>> {
        let fields: HashMap<String, String> = self.conn().hgetall(keys.schedule(name)).await?;
        let Some(spec) = fields.get("spec") else {
            return Ok(None);
        };
        let spec: ScheduleSpec = serde_json::from_str(spec).map_err(|e| {
            Error::corrupt(format!("schedule {name} does not decode")).with_source(e)
        })?;
        let n = |f: &str| fields.get(f).and_then(|v| v.parse::<i64>().ok());
        let next_ms = n("next").unwrap_or(-1);
        let info = ScheduleInfo {
            spec,
            version: n("version").unwrap_or(0) as u64,
            next_at: if next_ms >= 0 {
                ms_to_timestamp(next_ms)
            } else {
                None
            },
            watermark: ms_to_timestamp(n("watermark").unwrap_or(0)),
            last_fired_at: n("last_fired_at").and_then(ms_to_timestamp),
            fired: n("fired").unwrap_or(0) as u64,
            skipped: n("skipped").unwrap_or(0) as u64,
            paused: fields.get("paused").is_some_and(|p| p == "1"),
        };
        Ok(Some(StoredSchedule { info, next_ms }))
    }

    /// Redis now and the queue's schedules with their next fire times, earliest first.
    pub(crate) async fn schedules_due(
        &self,
        keys: &QueueKeys,
    ) -> Result<(i64, Vec<(String, i64)>)> {
        let (time, due): ((i64, i64), Vec<(String, f64)>) = redis::pipe()
            .cmd("TIME")
            .zrange_withscores(&keys.schedules_due, 0, 999)
            .query_async(&mut self.conn())
            .await?;
        let now = time.0 * 1000 + time.1 / 1000;
        Ok((
            now,
            due.into_iter()
                .map(|(name, at)| (name, at as i64))
                .collect(),
        ))
    }

    #[allow(clippy::too_many_arguments, reason = "one argument per script input")]
    pub(crate) async fn fire(
        &self,
        keys: &QueueKeys,
        retention: &Retention,
        name: &str,
        version: u64,
        expected_next: i64,
        new_next: i64,
        watermark: i64,
        skipped: u64,
        ticks: u64,
        jobs: &[TickJob],
    ) -> Result<FireOutcome> {
        self.upgrade_to_write(keys).await?;
        let mut inv = SCRIPTS.fire.prepare_invoke();
        inv.key(keys.schedule(name))
            .key(&keys.schedules_due)
            .key(&keys.pending)
            .key(&keys.wake)
            .key(&keys.scheduled)
            .key(&keys.retry)
            .key(&keys.cancelled);
        inv.arg(&keys.job_prefix)
            .arg(name)
            .arg(version)
            .arg(expected_next)
            .arg(new_next);
        inv.arg(watermark)
            .arg(skipped)
            .arg(ticks)
            .arg(retention.keep_ms().max(1));
        for job in jobs {
            inv.arg(&job.id)
                .arg(&job.data)
                .arg(job.priority)
                .arg(job.max_attempts)
                .arg(&job.group);
        }
        let reply: Vec<Value> = inv.invoke_async(&mut self.conn()).await?;
        let answer = reply.first().map(text).transpose()?.unwrap_or_default();
        let created = reply.get(1).map(int).transpose()?.unwrap_or(0) as u64;
        Ok(match answer.as_str() {
            "fired" => FireOutcome::Fired(created),
            "overlap" => FireOutcome::Overlap,
            "raced" => FireOutcome::Raced,
            "early" => FireOutcome::Early,
            "paused" => FireOutcome::Paused,
            _ => FireOutcome::Gone,
        })
    }
}
