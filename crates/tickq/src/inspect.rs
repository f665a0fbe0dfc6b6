//! The read and admin API: one surface behind the CLI, the HTTP API and the dashboard.

use crate::broker::{Broker, CancelOutcome, QueueCounts, Retention, job_not_found};
use crate::job::{JobInfo, JobState, validate_queue_name};
use crate::{Error, Result};

/// Jobs deleted per script call by [`Inspector::purge`].
const PURGE_BATCH: usize = 1000;

/// Reads queue statistics and jobs, and retries, cancels or deletes jobs.
#[derive(Clone)]
pub struct Inspector {
    pub(crate) broker: Broker,
    pub(crate) retention: Retention,
}

impl Inspector {
    /// Connect to Redis at `url`.
    pub async fn connect(url: &str) -> Result<Inspector> {
        Ok(crate::Client::connect(url).await?.inspector())
    }

    /// Every queue that has ever received a job, sorted by name.
    pub async fn queues(&self) -> Result<Vec<String>> {
        self.broker.queues().await
    }

    /// Counts by state and processed/failed totals of one queue.
    pub async fn counts(&self, queue: &str) -> Result<QueueCounts> {
        validate_queue_name(queue)?;
        self.broker.counts(&self.broker.keys(queue)).await
    }

    /// [`Inspector::counts`] of every queue.
    pub async fn stats(&self) -> Result<Vec<QueueCounts>> {
        let mut out = Vec::new();
        for queue in self.queues().await? {
            out.push(self.broker.counts(&self.broker.keys(&queue)).await?);
        }
        Ok(out)
    }

    /// Jobs of a queue in one state, oldest first (pending: next to run first), skipping
    /// `offset` and returning at most `limit`.
    pub async fn jobs(
        &self,
        queue: &str,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<JobInfo>> {
        validate_queue_name(queue)?;
        let keys = self.broker.keys(queue);
        let ids = self.broker.ids(&keys, state, offset, limit).await?;
        self.broker.jobs(&keys, &ids).await
    }

    /// One job of a queue.
    pub async fn job(&self, queue: &str, id: &str) -> Result<JobInfo> {
        validate_queue_name(queue)?;
        let keys = self.broker.keys(queue);
        self.broker
            .job(&keys, id)
            .await?
            .ok_or_else(|| job_not_found(queue, id))
    }

    /// Find a job by id alone, looking in every queue.
    pub async fn find_job(&self, id: &str) -> Result<JobInfo> {
        for queue in self.queues().await? {
            if let Some(job) = self.broker.job(&self.broker.keys(&queue), id).await? {
                return Ok(job);
            }
        }
        Err(Error::not_found(format!("no job {id} in any queue")))
    }

    /// Run a dead, cancelled, retry or scheduled job now; answers the state it had.
    pub async fn retry(&self, queue: &str, id: &str) -> Result<JobState> {
        validate_queue_name(queue)?;
        self.broker.retry(&self.broker.keys(queue), id).await
    }

    /// Send a waiting (scheduled, pending or retry) job to dead by hand, where it is kept and
    /// can be retried; answers the state it had. A running job is refused: cancel it.
    pub async fn kill(&self, queue: &str, id: &str) -> Result<JobState> {
        validate_queue_name(queue)?;
        self.broker
            .kill(&self.broker.keys(queue), &self.retention, id)
            .await
    }

    /// Cancel a job (see [`crate::Client::cancel`]).
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<CancelOutcome> {
        validate_queue_name(queue)?;
        self.broker
            .cancel(&self.broker.keys(queue), &self.retention, id)
            .await
    }

    /// Pause a queue: once this returns, no worker starts another job of it (jobs already
    /// running finish). Jobs can still be enqueued; scheduled and retry jobs still become
    /// pending when due. Answers whether the queue was paused already.
    pub async fn pause_queue(&self, queue: &str) -> Result<bool> {
        validate_queue_name(queue)?;
        self.broker.set_paused(&self.broker.keys(queue), true).await
    }

    /// Resume a paused queue and wake an idle worker. Answers whether it was paused.
    pub async fn resume_queue(&self, queue: &str) -> Result<bool> {
        validate_queue_name(queue)?;
        self.broker
            .set_paused(&self.broker.keys(queue), false)
            .await
    }

    /// Set a queue's limits (replacing the ones it had), for every worker on every node at
    /// once: at most `concurrency` of its jobs active, at most `rate.jobs` started in any
    /// window of `rate.per`. Jobs over a limit wait; none fails. [`QueueLimits::default`]
    /// removes every limit.
    pub async fn set_limits(&self, queue: &str, limits: crate::QueueLimits) -> Result<()> {
        validate_queue_name(queue)?;
        limits.validate()?;
        self.broker.register_queue(queue).await?;
        self.broker
            .set_limits(&self.broker.keys(queue), &limits)
            .await
    }

    /// A queue's limits.
    pub async fn limits(&self, queue: &str) -> Result<crate::QueueLimits> {
        validate_queue_name(queue)?;
        self.broker.limits(&self.broker.keys(queue)).await
    }

    /// Delete every job of a queue in `state`; answers how many went. Work is done in batches
    /// of 1000 jobs, one script call each, so Redis is never blocked for long; jobs
    /// that enter the state while a purge runs may be deleted too. Active jobs are refused
    /// ([`crate::ErrorKind::InvalidArgument`]): cancel them.
    pub async fn purge(&self, queue: &str, state: JobState) -> Result<u64> {
        validate_queue_name(queue)?;
        let keys = self.broker.keys(queue);
        let mut total = 0;
        loop {
            let n = self.broker.purge_batch(&keys, state, PURGE_BATCH).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Delete a job that is not running; answers the state it had.
    pub async fn delete(&self, queue: &str, id: &str) -> Result<JobState> {
        validate_queue_name(queue)?;
        self.broker.delete(&self.broker.keys(queue), id).await
    }
}
