//! Sharded queues as one queue: counts summed over the shards, per-shard figures, and which
//! shard holds a job (see `shard.rs` for the layout).

use super::Inspector;
use crate::broker::job_not_found;
use crate::job::{JobInfo, validate_queue_name};
use crate::queue::QueueCounts;
use crate::shard::Layout;
use crate::{QueueLimits, Rate, Result};
use futures::future::try_join_all;
use serde::Serialize;

/// One physical queue of a sharded queue, with its counts: `Inspector::shards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShardCounts {
    /// The shard's number (`None`: the base queue, which holds the jobs enqueued before the
    /// queue was sharded).
    pub shard: Option<u32>,
    /// Its Redis Cluster hash slot (every key of the shard carries it).
    pub slot: u16,
    /// Its counts; `queue` is the shard's own queue name (`hot#3`).
    pub counts: QueueCounts,
}

impl Inspector {
    /// The counts of each physical queue of a sharded queue: its base queue, then shard 0,
    /// 1, ... (one entry for a queue without shards).
    pub async fn shards(&self, queue: &str) -> Result<Vec<ShardCounts>> {
        validate_queue_name(queue)?;
        let layout = self.broker.layout(queue).await?;
        let counts = try_join_all(
            layout
                .physical()
                .map(|q| async move { self.broker.counts(&self.broker.keys(q)).await }),
        )
        .await?;
        Ok(counts
            .into_iter()
            .enumerate()
            .map(|(i, counts)| ShardCounts {
                shard: i.checked_sub(1).map(|s| s as u32),
                slot: crate::shard::slot(&counts.queue),
                counts,
            })
            .collect())
    }

    /// A queue's counts, summed over its shards (the name is checked by the caller).
    pub(crate) async fn counts_of(&self, queue: &str) -> Result<QueueCounts> {
        let layout = self.broker.layout(queue).await?;
        if !layout.is_sharded() {
            return self.broker.counts(&self.broker.keys(queue)).await;
        }
        let parts = try_join_all(
            layout
                .physical()
                .map(|q| async move { self.broker.counts(&self.broker.keys(q)).await }),
        )
        .await?;
        let mut sum = QueueCounts {
            queue: queue.to_owned(),
            ..QueueCounts::default()
        };
        for part in &parts {
            for (state, n) in &part.states {
                *sum.states.entry(*state).or_default() += n;
            }
            sum.processed += part.processed;
            sum.failed += part.failed;
            sum.paused |= part.paused;
        }
        // The base queue carries a copy of shard 0's share, not a share of its own.
        sum.limits = sum_limits(parts[1..].iter().map(|p| p.limits));
        Ok(sum)
    }

    /// The physical queue that holds job `id` of `queue`: the queue itself when it has no
    /// shards (whether or not the job exists), else the first of its shards that has the job.
    pub(crate) async fn locate(&self, queue: &str, id: &str) -> Result<String> {
        validate_queue_name(queue)?;
        let layout = self.broker.layout(queue).await?;
        if !layout.is_sharded() {
            return Ok(queue.to_owned());
        }
        match self.find_in(&layout, id).await? {
            Some(job) => Ok(job.queue),
            None => Err(job_not_found(queue, id)),
        }
    }

    /// Job `id` in any physical queue of `layout`; its `queue` is the physical queue. Looks in
    /// every shard at once (a job's shard cannot be told from its id: see docs/queue-control.md).
    pub(crate) async fn find_in(&self, layout: &Layout, id: &str) -> Result<Option<JobInfo>> {
        let found = try_join_all(
            layout
                .physical()
                .map(|q| async move { self.broker.job(&self.broker.keys(q), id).await }),
        )
        .await?;
        Ok(found.into_iter().flatten().next())
    }
}

/// A job as the caller sees it: in its logical queue.
pub(crate) fn as_logical(mut job: JobInfo) -> JobInfo {
    if let Some((queue, _)) = job.queue.split_once('#') {
        job.queue = queue.to_owned();
    }
    job
}

/// The limits of the shards together: the concurrencies and the rates' job counts add up (every
/// shard has the same window); a limit is shown only if every shard has it.
pub(crate) fn sum_limits(shards: impl Iterator<Item = QueueLimits>) -> QueueLimits {
    let shards: Vec<QueueLimits> = shards.collect();
    let concurrency = shards.iter().map(|l| l.concurrency).sum::<Option<u32>>();
    let rate = shards
        .iter()
        .map(|l| l.rate)
        .try_fold((0u32, None), |(jobs, _), rate| {
            rate.map(|r| (jobs + r.jobs, Some(r.per)))
        })
        .and_then(|(jobs, per)| per.map(|per| Rate::new(jobs, per)));
    QueueLimits { concurrency, rate }
}

/// Shard `shard`'s part of `limits` split over `count` shards (`shard.rs`'s `split`).
pub(crate) fn share(limits: &QueueLimits, count: u32, shard: u32) -> QueueLimits {
    QueueLimits {
        concurrency: limits
            .concurrency
            .map(|c| crate::shard::split(c, count, shard)),
        rate: limits.rate.map(|r| Rate {
            jobs: crate::shard::split(r.jobs, count, shard),
            per: r.per,
        }),
    }
}
