//! Registering schedules from a [`Client`] (the producer side; the admin side, listing and
//! controlling them, is on [`crate::Inspector`]).

use super::spec::{ScheduleSpec, Upserted};
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
}
