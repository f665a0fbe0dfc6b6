//! The admin core: everything a person can see or do, one surface behind the CLI's `--json`,
//! the HTTP API and the dashboard. Every answer is a typed, serialisable document, so all three
//! render the same thing.
//!
//! | part | what |
//! | --- | --- |
//! | this file | queues: counts, pause/resume, limits, purge |
//! | [`jobs`] | jobs: pages by state with filters and a cursor, one job, actions by id, bulk actions |
//! | [`schedules`] | schedules: list, trigger, pause, resume, remove |
//! | [`nodes`] | the live nodes and what they run |
//! | [`locks`] | the locks held now |
//! | [`flows`] | workflows: one with its steps, cancel, retry |
//! | [`history`] | per-minute counts kept in Redis |
//! | [`shards`] | sharded queues: summed counts, per-shard counts, which shard holds a job |

mod flows;
mod history;
mod jobs;
mod locks;
mod nodes;
mod schedules;
mod shards;

pub use flows::{
    FlowCancelled, FlowInfo, FlowList, FlowRetried, FlowState, FlowStepView, FlowSummary,
    MAX_FLOW_LIST,
};
pub use history::{History, HistoryPoint, HistoryQuery};
pub use jobs::{BulkOutcome, JobActed, JobAction, JobFilter, JobPage, MAX_PAGE};
pub use locks::{LockList, LockView};
pub use nodes::NodeList;
pub use schedules::{
    ScheduleEntry, ScheduleList, SchedulePaused, ScheduleRemoved, ScheduleTriggered,
};
pub use shards::ShardCounts;

use crate::broker::{Broker, Retention};
use crate::job::{JobState, validate_queue_name};
use crate::queue::QueueCounts;
use crate::{LimitsChange, QueueLimits, Result};
use serde::Serialize;

/// Jobs deleted per script call by [`Inspector::purge`].
const PURGE_BATCH: usize = 1000;

/// Reads what tickq holds in Redis and acts on it: the one admin surface.
#[derive(Clone)]
pub struct Inspector {
    pub(crate) broker: Broker,
    pub(crate) retention: Retention,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").finish_non_exhaustive()
    }
}

/// Every queue with its counts: `tickq stats --json`, `GET /api/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// The queues, sorted by name.
    pub queues: Vec<QueueCounts>,
}

/// The answer to pausing or resuming a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuePaused {
    /// The queue.
    pub queue: String,
    /// Whether it is paused now.
    pub paused: bool,
    /// Whether this call changed that.
    pub changed: bool,
}

/// A queue's limits, after a change or as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueLimitsView {
    /// The queue.
    pub queue: String,
    /// Its limits.
    pub limits: QueueLimits,
}

/// The answer to a purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Purged {
    /// The queue.
    pub queue: String,
    /// The state purged.
    pub state: JobState,
    /// How many jobs went.
    pub purged: u64,
}

impl Inspector {
    /// Connect to Redis at `url` (any form [`crate::Client::connect`] takes).
    pub async fn connect(url: &str) -> Result<Inspector> {
        Ok(crate::Client::connect(url).await?.inspector())
    }

    /// Every queue that has ever received a job (or was declared sharded), sorted by name. A
    /// sharded queue is listed once, by its own name, not by its shards'.
    pub async fn queues(&self) -> Result<Vec<String>> {
        let mut queues: Vec<String> = self
            .broker
            .queues()
            .await?
            .into_iter()
            .map(|q| crate::shard::logical(&q).to_owned())
            .collect();
        queues.sort();
        queues.dedup();
        Ok(queues)
    }

    /// Counts by state and processed/failed totals of one queue; for a sharded queue, summed
    /// over its shards ([`Inspector::shards`] has each shard's), with `paused` true if any
    /// shard is paused and the limits of the shards added up.
    pub async fn counts(&self, queue: &str) -> Result<QueueCounts> {
        validate_queue_name(queue)?;
        self.counts_of(queue).await
    }

    /// [`Inspector::counts`] of every queue.
    pub async fn stats(&self) -> Result<Stats> {
        let mut queues = Vec::new();
        for queue in self.queues().await? {
            queues.push(self.counts_of(&queue).await?);
        }
        Ok(Stats { queues })
    }

    /// Pause a queue: once this returns, no worker starts another job of it (jobs already
    /// running finish). Jobs can still be enqueued; scheduled and retry jobs still become
    /// pending when due.
    pub async fn pause_queue(&self, queue: &str) -> Result<QueuePaused> {
        self.set_paused(queue, true).await
    }

    /// Resume a paused queue and wake an idle worker.
    pub async fn resume_queue(&self, queue: &str) -> Result<QueuePaused> {
        self.set_paused(queue, false).await
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<QueuePaused> {
        validate_queue_name(queue)?;
        // Every shard: one script call each, so a pause reaches the shards one after another
        // (each within a round trip of the others).
        let layout = self.broker.layout(queue).await?;
        let mut changed = false;
        for physical in layout.physical() {
            let was = self
                .broker
                .set_paused(&self.broker.keys(physical), paused)
                .await?;
            changed |= was != paused;
        }
        Ok(QueuePaused {
            queue: queue.to_owned(),
            paused,
            changed,
        })
    }

    /// Set a queue's limits (replacing the ones it had), for every worker on every node at
    /// once: at most `concurrency` of its jobs active, at most `rate.jobs` started in any
    /// window of `rate.per`. Jobs over a limit wait; none fails. [`QueueLimits::default`]
    /// removes every limit.
    ///
    /// On a queue of K shards each shard enforces its own part, since a claim sees one shard:
    /// `limit / K` each, and one more for the first `limit % K` shards, for the concurrency and
    /// for the rate's job count (same window), so the parts add up to the limit. A limit below
    /// K is refused ([`crate::ErrorKind::InvalidArgument`]): some shard would get none. The base
    /// queue (jobs from before the queue was sharded) gets shard 0's part as well.
    pub async fn set_limits(&self, queue: &str, limits: QueueLimits) -> Result<QueueLimitsView> {
        validate_queue_name(queue)?;
        limits.validate()?;
        self.broker.register_queue(queue).await?;
        let layout = self.broker.layout(queue).await?;
        let count = layout.shards.len() as u32;
        if count > 1 {
            let below = |n: Option<u32>| n.is_some_and(|n| n < count);
            if below(limits.concurrency) || below(limits.rate.map(|r| r.jobs)) {
                return Err(crate::Error::invalid(format!(
                    "queue {queue} has {count} shards, and each enforces its part of a limit: a \
                     concurrency or rate below {count} cannot be split; use at least {count}"
                )));
            }
            for (i, physical) in layout.shards.iter().enumerate() {
                let part = shards::share(&limits, count, i as u32);
                self.broker
                    .set_limits(&self.broker.keys(physical), &part)
                    .await?;
            }
        }
        let base = if count > 1 {
            shards::share(&limits, count, 0)
        } else {
            limits
        };
        self.broker
            .set_limits(&self.broker.keys(queue), &base)
            .await?;
        Ok(QueueLimitsView {
            queue: queue.to_owned(),
            limits,
        })
    }

    /// Change some of a queue's limits and keep the others ([`LimitsChange`]); answers the
    /// limits now in force.
    pub async fn change_limits(
        &self,
        queue: &str,
        change: LimitsChange,
    ) -> Result<QueueLimitsView> {
        let now = self.limits(queue).await?.limits;
        self.set_limits(queue, change.apply(now)).await
    }

    /// A queue's limits.
    pub async fn limits(&self, queue: &str) -> Result<QueueLimitsView> {
        validate_queue_name(queue)?;
        let layout = self.broker.layout(queue).await?;
        let limits = if layout.is_sharded() {
            let parts = futures::future::try_join_all(
                layout
                    .shards
                    .iter()
                    .map(|q| async move { self.broker.limits(&self.broker.keys(q)).await }),
            )
            .await?;
            shards::sum_limits(parts.into_iter())
        } else {
            self.broker.limits(&self.broker.keys(queue)).await?
        };
        Ok(QueueLimitsView {
            queue: queue.to_owned(),
            limits,
        })
    }

    /// Delete every job of a queue in `state`. Work is done in batches of 1000 jobs, one script
    /// call each, so Redis is never blocked for long; jobs that enter the state while a purge
    /// runs may be deleted too. Active jobs are refused ([`crate::ErrorKind::InvalidArgument`]):
    /// cancel them.
    pub async fn purge(&self, queue: &str, state: JobState) -> Result<Purged> {
        validate_queue_name(queue)?;
        let layout = self.broker.layout(queue).await?;
        let mut purged = 0;
        for physical in layout.physical() {
            let keys = self.broker.keys(physical);
            loop {
                let n = self.broker.purge_batch(&keys, state, PURGE_BATCH).await?;
                if n == 0 {
                    break;
                }
                purged += n;
            }
        }
        Ok(Purged {
            queue: queue.to_owned(),
            state,
            purged,
        })
    }
}
