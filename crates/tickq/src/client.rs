//! The producer side: enqueue jobs, read one back, cancel it.

use crate::broker::{Broker, CancelOutcome, Retention};
use crate::connect::ConnectOptions;
use crate::flow::{FlowSubmitted, Workflow};
use crate::inspect::Inspector;
use crate::job::{Due, Enqueued, JobInfo, JobState, NewJob};
use crate::{Error, ErrorKind, Result};

/// A handle to tickq on one Redis: cheap to clone, safe to share between tasks.
///
/// ```no_run
/// # async fn demo() -> tickq::Result<()> {
/// let client = tickq::Client::connect("redis://127.0.0.1:6379").await?;
/// let job = client.enqueue(tickq::NewJob::new("default", "hello")).await?;
/// println!("enqueued {} ({})", job.id, job.state);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) broker: Broker,
    pub(crate) retention: Retention,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to Redis at `url`: one server (`redis://`, `rediss://` or `redis+unix://`), a
    /// Cluster (`redis-cluster://host:port,host:port`) or the master Redis Sentinel names
    /// (`redis-sentinel://host:port,host:port/MASTER_NAME[/db]`, followed across failovers).
    ///
    /// `rediss://` (also `rediss-cluster://`, `rediss-sentinel://`) speaks TLS and trusts the
    /// Mozilla root certificates; for a private CA or a client certificate use
    /// [`Client::connect_with`].
    pub async fn connect(url: &str) -> Result<Client> {
        Client::connect_with(url, &ConnectOptions::new()).await
    }

    /// [`Client::connect`] with options: TLS certificates ([`ConnectOptions::tls`]). A
    /// failed TLS handshake is [`ErrorKind::Tls`], with a message that names the
    /// [`TlsFiles`](crate::TlsFiles) setting to fix.
    pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Client> {
        Ok(Client {
            broker: Broker::connect(url, options).await?,
            retention: Retention::default(),
        })
    }

    /// Use this retention for jobs this client cancels. Default: [`Retention::default`].
    pub fn with_retention(mut self, retention: Retention) -> Client {
        self.retention = retention;
        self
    }

    /// Refuse enqueues with [`ErrorKind::RedisFull`] once Redis' used memory reaches this
    /// fraction of its `maxmemory` (checked against a sample read at most every 250 ms, so a
    /// burst may pass it by a little; Redis itself refuses new jobs at `maxmemory`). The room
    /// above the mark is for the jobs already accepted: claims, acks, retries and recovery
    /// keep working up to and past `maxmemory`. Default: [`DEFAULT_HIGH_WATER`] (0.9); 1
    /// leaves only Redis' own refusal. Nothing is checked when Redis has no `maxmemory`.
    /// Fails with [`ErrorKind::InvalidArgument`] outside (0, 1].
    ///
    /// [`DEFAULT_HIGH_WATER`]: crate::DEFAULT_HIGH_WATER
    pub fn with_memory_high_water(mut self, fraction: f64) -> Result<Client> {
        crate::broker::memory::validate_high_water(fraction)?;
        self.broker.high_water = fraction;
        Ok(self)
    }

    /// Enqueue one job: one round trip. A job whose id already exists is not created again,
    /// nor one whose unique key another job holds ([`NewJob::unique_for`]): the error is
    /// [`ErrorKind::AlreadyExists`], it names the existing job, and
    /// [`Error::existing_job`] answers it.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let answer = self
            .enqueue_routed(vec![job])
            .await?
            .pop()
            .expect("one answer per job");
        if !answer.created {
            let message = if answer.duplicate {
                format!(
                    "job {} in queue {} ({}) holds the unique key; nothing was enqueued",
                    answer.id, answer.queue, answer.state
                )
            } else {
                format!(
                    "job {} already exists in queue {} ({})",
                    answer.id, answer.queue, answer.state
                )
            };
            return Err(Error::new(ErrorKind::AlreadyExists, message).with_existing(answer));
        }
        Ok(answer)
    }

    /// Enqueue many jobs in as few round trips as possible (one call per queue and 1,000
    /// jobs, up to 16 of them in flight at once, so a call of any size never waits on one
    /// reply for long). Jobs whose id already exists are answered with `created: false` and
    /// left as they are; jobs whose unique key another job holds are answered with that job
    /// and `duplicate: true`.
    ///
    /// If Redis fails part way (connection lost, timeout, Redis full), nothing more is sent
    /// and the error's [`Error::partial_enqueue`] lists the jobs Redis confirmed and hands
    /// back every other one with its id fixed (tickq generates ids before sending). Enqueueing
    /// those again creates each at most once: one that went in although its answer was lost
    /// is answered `created: false`.
    ///
    /// Jobs of a sharded queue ([`Client::shard_queue`]) are spread over its shards (see
    /// [`NewJob::shard_key`]), each shard's jobs sent as their own pipelined calls; a job
    /// handed back after a failure keeps the shard it was sent to, so enqueueing it again
    /// finds it there if it went in.
    ///
    /// ```no_run
    /// # async fn demo(client: tickq::Client, jobs: Vec<tickq::NewJob>) -> tickq::Result<()> {
    /// if let Err(e) = client.enqueue_bulk(jobs).await {
    ///     eprintln!("enqueue failed: {e}");
    ///     if let Some(partial) = e.into_partial_enqueue() {
    ///         // Once more, for the jobs without an answer; none is created twice.
    ///         let again = partial.unconfirmed.into_iter().map(|(_, job)| job).collect();
    ///         client.enqueue_bulk(again).await?;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue_bulk(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        self.enqueue_routed(jobs).await
    }

    /// Send each job of a sharded queue to its shard, enqueue, and answer with the queue names
    /// the caller used.
    async fn enqueue_routed(&self, mut jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let mut routed = false;
        // Per job, the logical queue and the shard it was sent to.
        let mut logical: Vec<Option<(String, u32)>> = Vec::with_capacity(jobs.len());
        for job in &mut jobs {
            crate::job::validate_queue_name(&job.queue)?;
            job.validate()?;
            let count = self.broker.shard_count(&job.queue).await?;
            if count > 1 {
                let shard = self.broker.pick_shard(job, count);
                let name = crate::shard::shard_name(&job.queue, shard, count);
                logical.push(Some((std::mem::replace(&mut job.queue, name), shard)));
                routed = true;
            } else {
                logical.push(None);
            }
        }
        let mut answers = match self.broker.enqueue(jobs).await {
            Ok(answers) => answers,
            Err(mut e) => {
                // Hand the jobs back as the caller named them, each pinned to its shard: a
                // retry must look for a job where it may have gone in, not on another shard.
                if let Some(partial) = e.partial_enqueue_mut() {
                    for (_, answer) in &mut partial.enqueued {
                        answer.queue = crate::shard::logical(&answer.queue).to_owned();
                    }
                    for (i, job) in &mut partial.unconfirmed {
                        if let Some((queue, shard)) = logical[*i].take() {
                            job.queue = queue;
                            job.shard = Some(shard);
                        }
                    }
                }
                return Err(e);
            }
        };
        if routed {
            for answer in &mut answers {
                answer.queue = crate::shard::logical(&answer.queue).to_owned();
            }
        }
        Ok(answers)
    }

    /// Make `queue` a sharded queue of `shards` sub-queues (docs/queue-control.md), or check that it
    /// is one: on Redis Cluster each shard lives in its own hash slot, spread evenly over the
    /// slot range, so a hot queue uses every master. Workers declare their queues the same way
    /// when they start ([`WorkerBuilder::sharded_queue`](crate::WorkerBuilder::sharded_queue)).
    ///
    /// A queue's shard count is fixed once declared: another count fails with
    /// [`ErrorKind::Conflict`] (a smaller one would strand the jobs of the shards past it).
    /// Jobs the queue held before it was sharded stay in its base queue, which workers keep
    /// draining. `shards` 1 only checks that the queue is not sharded. At most
    /// [`MAX_SHARDS`](crate::MAX_SHARDS).
    pub async fn shard_queue(&self, queue: &str, shards: u32) -> Result<()> {
        self.broker.declare_shards(queue, shards).await
    }

    /// Submit a workflow, all or nothing, in one script call: steps without parents are
    /// pending at once, the others wait for their parents (docs/workflows.md). A workflow
    /// whose id exists is not created again (`created: false`). Finished workflows are kept
    /// for this client's [`Retention::completed_for`].
    pub async fn submit_flow(&self, flow: Workflow) -> Result<FlowSubmitted> {
        let id = flow
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let created = self
            .broker
            .submit_flow(&flow, &id, self.retention.keep_ms())
            .await?;
        Ok(FlowSubmitted {
            id,
            queue: flow.queue,
            created,
        })
    }

    /// Read one job.
    pub async fn job(&self, queue: &str, id: &str) -> Result<JobInfo> {
        self.inspector().job_in(queue, id).await
    }

    /// Cancel a job: a waiting job is cancelled at once; a running one is stopped by its
    /// worker at the next lease renewal.
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<CancelOutcome> {
        let physical = self.inspector().locate(queue, id).await?;
        let keys = self.broker.keys(&physical);
        self.broker.cancel(&keys, &self.retention, id).await
    }

    /// Move a waiting job (scheduled, retry or pending) to run at `at` (Redis' clock); a time
    /// that has passed makes it pending now. Answers the state it had.
    pub async fn reschedule_at(
        &self,
        queue: &str,
        id: &str,
        at: jiff::Timestamp,
    ) -> Result<JobState> {
        let physical = self.inspector().locate(queue, id).await?;
        self.broker
            .reschedule(&self.broker.keys(&physical), id, &Due::At(at))
            .await
    }

    /// Move a waiting job to run `delay` after Redis' now. Answers the state it had.
    pub async fn reschedule_in(
        &self,
        queue: &str,
        id: &str,
        delay: std::time::Duration,
    ) -> Result<JobState> {
        let physical = self.inspector().locate(queue, id).await?;
        let due = if delay.is_zero() {
            Due::Now
        } else {
            Due::In(delay)
        };
        self.broker
            .reschedule(&self.broker.keys(&physical), id, &due)
            .await
    }

    /// Checks of the deployment this client talks to: Redis version, persistence, eviction,
    /// memory, this node's clock, this user's ACL (see [`crate::doctor`]).
    pub fn doctor(&self) -> crate::doctor::Doctor {
        crate::doctor::Doctor::new(self.broker.clone())
    }

    /// The read and admin API over the same connection.
    pub fn inspector(&self) -> Inspector {
        Inspector {
            broker: self.broker.clone(),
            retention: self.retention,
        }
    }
}
