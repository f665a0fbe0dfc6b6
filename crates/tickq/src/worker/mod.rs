//! The worker runtime: claims jobs, runs their handlers, keeps their leases, reports outcomes.
//!
//! One [`Worker`] is one process's worth of job slots. Its parts, one file each, share
//! [`Shared`] and stop on the same tokens:
//!
//! | part | job |
//! | --- | --- |
//! | [`fetcher`] | claims batches of jobs into free slots; sleeps until a wake-up or the next due time |
//! | [`processor`] | runs one job: timeout, panics, cancellation; sends its outcome |
//! | [`acker`] | batches completions into few ack calls |
//! | [`heartbeat`] | renews the leases of running jobs; abandons those it cannot keep |
//! | [`recoverer`] | returns jobs whose lease expired (dead workers) to pending |
//! | [`janitor`] | enforces retention of finished jobs |
//! | [`relay`] | hands workflow step ends to the other queues of their workflows |
//! | [`registrar`] | keeps this node listed in the node registry, with the jobs it runs |
//! | [`metrics`] | per-queue handles into the `metrics` facade |

mod acker;
mod fetcher;
mod heartbeat;
mod janitor;
mod metrics;
mod processor;
mod recoverer;
mod registrar;
mod relay;

use crate::broker::keys::QueueKeys;
use crate::broker::{Broker, Retention};
use crate::handler::Handler;
use crate::retry::{ExponentialBackoff, RetryPolicy};
use crate::shutdown::ShutdownHandle;
use crate::{Client, Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shortest lease a worker accepts.
pub const MIN_LEASE: Duration = Duration::from_millis(300);

/// Tunables of a worker; every field's default is given on [`WorkerBuilder`]'s setters.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    /// The physical queues claimed from: a sharded queue's base queue and shards, each with
    /// the queue's weight.
    pub(crate) queues: Vec<(Arc<QueueKeys>, u32)>,
    /// The queues as configured: (queue, weight, shard count; 1: not sharded). The counts are
    /// checked against Redis when the worker starts.
    pub(crate) declared: Vec<(String, u32, u32)>,
    pub(crate) concurrency: usize,
    pub(crate) claim_batch: usize,
    pub(crate) lease: Duration,
    pub(crate) job_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) stop_grace: Duration,
    pub(crate) spread_grace: Duration,
    pub(crate) recover_interval: Duration,
    pub(crate) janitor_interval: Duration,
    pub(crate) max_idle: Duration,
    pub(crate) node_heartbeat: Duration,
    pub(crate) block: Duration,
    pub(crate) retention: Retention,
    pub(crate) retry: Arc<dyn RetryPolicy>,
    /// Acks wait for this many replicas, up to this long (Redis `WAIT`).
    pub(crate) ack_replicas: Option<(u32, Duration)>,
}

/// Why the worker stopped a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopReason {
    None = 0,
    /// The lease is gone (renewal rejected, or not renewed before its deadline): abandon the
    /// job without reporting anything; whoever holds it now, or the recoverer, owns it.
    LeaseLost = 1,
    /// A cancel was asked: report the job cancelled.
    Cancelled = 2,
    /// Shutdown past its grace period: hand the job back without charging the attempt.
    Shutdown = 3,
    /// The attempt's time limit passed: fail it (retried by policy).
    TimedOut = 4,
}

/// A job this worker is running.
pub(crate) struct Running {
    pub(crate) fence: u64,
    pub(crate) stop: CancellationToken,
    pub(crate) reason: AtomicU8,
    /// Local time by which the lease must be renewed. Measured from when the claim or renewal
    /// was *sent*, so it is never later than Redis' own deadline.
    pub(crate) lease_until: Mutex<Instant>,
}

impl Running {
    pub(crate) fn stop(&self, reason: StopReason) {
        // The first reason wins: a job cancelled and then lost is reported as neither.
        let _ = self.reason.compare_exchange(
            StopReason::None as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.stop.cancel();
    }

    pub(crate) fn reason(&self) -> StopReason {
        match self.reason.load(Ordering::Acquire) {
            1 => StopReason::LeaseLost,
            2 => StopReason::Cancelled,
            3 => StopReason::Shutdown,
            4 => StopReason::TimedOut,
            _ => StopReason::None,
        }
    }
}

/// Counters of what this worker did since it started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) handed_back: AtomicU64,
    pub(crate) recovered: AtomicU64,
}

/// A snapshot of a worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs this worker completed (acks Redis applied).
    pub completed: u64,
    /// Failed attempts this worker reported.
    pub failed: u64,
    /// Outcomes Redis refused because this worker no longer held the job (late acks of a
    /// zombie): reported, not applied.
    pub stale: u64,
    /// Jobs abandoned because their lease was lost or could not be renewed in time.
    pub abandoned: u64,
    /// Jobs handed back to pending at shutdown.
    pub handed_back: u64,
    /// Expired leases (of any worker) this worker's recoverer returned.
    pub recovered: u64,
}

pub(crate) type JobKey = (Arc<str>, String);

/// State shared by the parts of one worker.
pub(crate) struct Shared {
    pub(crate) broker: Broker,
    pub(crate) config: WorkerConfig,
    pub(crate) id: String,
    /// The node's name (the first part of `id`).
    pub(crate) node: String,
    pub(crate) handlers: HashMap<String, Arc<dyn Handler>>,
    pub(crate) running: Mutex<HashMap<JobKey, Arc<Running>>>,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) counters: Counters,
    /// Wakes the idle fetcher: set by the wake-stream readers and by the recoverer.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// Made on first use rather than at build time, so a recorder installed after the worker
    /// was built (but before it runs jobs) still gets its metrics.
    pub(crate) metrics: OnceLock<metrics::Metrics>,
}

impl Shared {
    pub(crate) fn keys(&self, queue: &str) -> Arc<QueueKeys> {
        self.broker.keys(queue)
    }

    /// The metric handles of `queue` (None for a queue this worker does not claim from).
    pub(crate) fn metrics(&self, queue: &str) -> Option<&metrics::QueueMetrics> {
        self.metrics
            .get_or_init(|| {
                metrics::Metrics::new(self.config.queues.iter().map(|(k, _)| k.name.as_str()))
            })
            .queue(queue)
    }

    pub(crate) fn running_snapshot(&self) -> Vec<(JobKey, Arc<Running>)> {
        let running = self.running.lock().expect("running map poisoned");
        running
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    broker: Broker,
    shutdown: Option<ShutdownHandle>,
    recover_interval: Option<Duration>,
    node: Option<String>,
    /// (queue, weight, shards).
    queues: Vec<(String, u32, u32)>,
    handlers: HashMap<String, Arc<dyn Handler>>,
    config: WorkerConfig,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&String> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("WorkerBuilder")
            .field("node", &self.node)
            .field("queues", &self.queues)
            .field("kinds", &kinds)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Claim from `queue`, weighted against the other queues (a queue of weight 3 is tried
    /// first three times as often as one of weight 1). Default: none; at least one is needed.
    ///
    /// The queue must not be sharded in Redis: [`Worker::run`] fails with
    /// [`crate::ErrorKind::Conflict`] if it is (use [`sharded_queue`](Self::sharded_queue)).
    pub fn queue(mut self, queue: impl Into<String>, weight: u32) -> WorkerBuilder {
        self.queues.push((queue.into(), weight, 1));
        self
    }

    /// Claim from the sharded queue `queue` of `shards` shards (docs/queue-control.md): each shard
    /// (and the base queue, which holds jobs from before the queue was sharded) is claimed from
    /// as a queue of its own with an equal part of `weight`, drawn in a random weighted order
    /// every round, so no shard starves and the queue as a whole is drawn first as often as a
    /// plain queue of that weight. [`Worker::run`] declares the queue's shard count in Redis
    /// ([`Client::shard_queue`]) and fails with [`crate::ErrorKind::Conflict`] if Redis holds
    /// another count. `shards` 1 is [`queue`](Self::queue).
    pub fn sharded_queue(
        mut self,
        queue: impl Into<String>,
        weight: u32,
        shards: u32,
    ) -> WorkerBuilder {
        self.queues.push((queue.into(), weight, shards));
        self
    }

    /// Run jobs of `kind` with `handler`.
    pub fn handler(mut self, kind: impl Into<String>, handler: impl Handler) -> WorkerBuilder {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// Most jobs running at once. Default: 16.
    pub fn concurrency(mut self, n: usize) -> WorkerBuilder {
        self.config.concurrency = n;
        self
    }

    /// Most jobs one claim call leases. Default: 256.
    pub fn claim_batch(mut self, n: usize) -> WorkerBuilder {
        self.config.claim_batch = n;
        self
    }

    /// Lease length; leases are renewed every third of it, and a dead worker's jobs run again
    /// after about this long. Default: 30 s.
    pub fn lease(mut self, lease: Duration) -> WorkerBuilder {
        self.config.lease = lease;
        self
    }

    /// Time limit of one attempt when the job sets none. Default: 30 minutes.
    pub fn job_timeout(mut self, timeout: Duration) -> WorkerBuilder {
        self.config.job_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for running jobs before handing them back.
    /// Default: 25 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> WorkerBuilder {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long a handler that was told to stop ([`crate::Job::stopped`]: lease lost, job
    /// cancelled, forced shutdown) keeps running to clean up before it is dropped. Default: 1 s.
    pub fn stop_grace(mut self, grace: Duration) -> WorkerBuilder {
        self.config.stop_grace = grace;
        self
    }

    /// How long this worker leaves the further tasks of a cron tick it already has a task of
    /// to other, idle workers (so the tasks of one tick spread over nodes) before it takes
    /// them itself. Zero turns spreading off. Default: 250 ms.
    pub fn spread_grace(mut self, grace: Duration) -> WorkerBuilder {
        self.config.spread_grace = grace;
        self
    }

    /// How often expired leases are looked for, and how often each queue's workflow outbox is
    /// relayed when no step end of this worker did it (docs/workflows.md, "Steps in other
    /// queues"). Default: 5 s, or the lease if shorter.
    pub fn recover_interval(mut self, every: Duration) -> WorkerBuilder {
        self.recover_interval = Some(every);
        self
    }

    /// How often retention is enforced. Default: 60 s.
    pub fn janitor_interval(mut self, every: Duration) -> WorkerBuilder {
        self.config.janitor_interval = every;
        self
    }

    /// How long finished jobs are kept. Default: [`Retention::default`].
    pub fn retention(mut self, retention: Retention) -> WorkerBuilder {
        self.config.retention = retention;
        self
    }

    /// After each ack, wait up to `timeout` for `replicas` replicas to have it (Redis `WAIT`);
    /// if fewer do, the ack counts as failed and is sent again (it is idempotent) until it is
    /// replicated or the lease runs out, and then the job runs again. Without this, an ack
    /// written to a primary that is cut off or about to be replaced (a failover) can vanish
    /// with it, and the job runs a second time; with it, such an ack fails and is retried on
    /// the new primary. Costs one replication round trip per ack batch, on a connection of the
    /// acker's own. An ack sent again to a primary that had applied it (the replica was only
    /// slow) answers it as stale, so `WorkerStats::stale` can count such acks. Default: off.
    pub fn ack_replicas(mut self, replicas: u32, timeout: Duration) -> WorkerBuilder {
        self.config.ack_replicas = Some((replicas, timeout));
        self
    }

    /// The wait before retrying a failed job. Default: [`ExponentialBackoff::default`].
    pub fn retry_policy(mut self, policy: impl RetryPolicy) -> WorkerBuilder {
        self.config.retry = Arc::new(policy);
        self
    }

    /// This node's name, shown as the owner of its jobs. Default: `hostname-pid`.
    pub fn node(mut self, node: impl Into<String>) -> WorkerBuilder {
        self.node = Some(node.into());
        self
    }

    /// Stop with this handle (shared with other parts of the node, say the scheduler).
    /// Default: a handle of its own ([`Worker::shutdown_handle`]).
    pub fn shutdown(mut self, handle: ShutdownHandle) -> WorkerBuilder {
        self.shutdown = Some(handle);
        self
    }

    /// How often this node records itself in the node registry (`tickq nodes`); a node that
    /// stops beating leaves the list after three beats. Default: 5 s.
    pub fn node_heartbeat(mut self, every: Duration) -> WorkerBuilder {
        self.config.node_heartbeat = every;
        self
    }

    /// Check the configuration and build the worker.
    pub fn build(self) -> Result<Worker> {
        let c = &self.config;
        if self.queues.is_empty() {
            return Err(Error::invalid("a worker needs at least one queue"));
        }
        for (queue, weight, shards) in &self.queues {
            crate::job::validate_queue_name(queue)?;
            crate::shard::validate_count(queue, *shards)?;
            if *weight == 0 {
                return Err(Error::invalid(format!(
                    "queue {queue}: weight must be at least 1"
                )));
            }
        }
        if c.concurrency == 0 || c.claim_batch == 0 {
            return Err(Error::invalid(
                "concurrency and claim batch must be at least 1",
            ));
        }
        if c.lease < MIN_LEASE {
            return Err(Error::invalid("lease must be at least 300ms"));
        }
        if let Some((replicas, timeout)) = c.ack_replicas
            && (replicas == 0 || timeout.is_zero() || timeout >= c.lease)
        {
            return Err(Error::invalid(format!(
                "ack replicas: need at least 1 replica and a timeout above zero and below the \
                 lease ({:?}), so that a failed ack can be sent again in time",
                c.lease
            )));
        }
        if c.node_heartbeat < Duration::from_millis(100) {
            return Err(Error::invalid("node heartbeat must be at least 100ms"));
        }
        let node = self.node.unwrap_or_else(default_node_name);
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut config = self.config;
        config.recover_interval = self
            .recover_interval
            .unwrap_or(config.lease.min(config.recover_interval));
        config.queues = physical_queues(&self.queues)
            .into_iter()
            .map(|(p, weight)| (self.broker.keys(&p), weight))
            .collect();
        config.declared = self.queues.clone();
        let shared = Arc::new(Shared {
            broker: self.broker,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            config,
            id: format!("{node}:{}", &suffix[..8]),
            node,
            handlers: self.handlers,
            running: Mutex::default(),
            counters: Counters::default(),
            wake: Arc::default(),
            metrics: OnceLock::new(),
        });
        Ok(Worker {
            shared,
            shutdown: self.shutdown.unwrap_or_default(),
        })
    }
}

/// Stops a worker's background parts and hands its running jobs back when `Worker::run` ends
/// or is dropped.
struct StopOnDrop {
    shared: Arc<Shared>,
    background: CancellationToken,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for (_, running) in self.shared.running_snapshot() {
            running.stop(StopReason::Shutdown);
        }
        self.background.cancel();
    }
}

/// The name of this node when none is configured: `hostname-pid`.
pub fn default_node_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// This machine's host name (`node` if it cannot be read).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned())
}

/// The physical queues of `(queue, weight, shards)` with their weights. A sharded queue's
/// weight is shared by its physical queues (base + shards): every weight is scaled by the least
/// common multiple of the physical counts, and each physical queue gets its equal part, so a
/// sharded queue is drawn first exactly as often as a plain queue of the same weight.
fn physical_queues(queues: &[(String, u32, u32)]) -> Vec<(String, u32)> {
    let scale = queues
        .iter()
        .fold(1u64, |m, (_, _, n)| lcm(m, physical_count(*n)));
    let mut out = Vec::new();
    for (queue, weight, shards) in queues {
        let share = u64::from(*weight) * scale / physical_count(*shards);
        let share = u32::try_from(share).unwrap_or(u32::MAX);
        let layout = crate::shard::Layout::new(queue, *shards);
        out.extend(layout.physical().map(|p| (p.to_owned(), share)));
    }
    out
}

/// How many physical queues a queue of `shards` shards has: its base queue and the shards.
fn physical_count(shards: u32) -> u64 {
    if shards > 1 { u64::from(shards) + 1 } else { 1 }
}

fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    a / gcd(a, b) * b
}

/// A pool of job slots that claims from its queues and runs handlers.
///
/// ```no_run
/// # async fn demo() -> tickq::Result<()> {
/// use tickq::{Client, Job, JobError, Worker};
///
/// let client = Client::connect("redis://127.0.0.1:6379").await?;
/// let worker = Worker::builder(&client)
///     .queue("default", 1)
///     .concurrency(32)
///     .handler("hello", |job: Job| async move {
///         println!("hello from job {} (attempt {})", job.id(), job.attempt());
///         Ok::<_, JobError>(())
///     })
///     .build()?;
/// worker.shutdown_handle().on_signals()?;
/// worker.run().await?;
/// # Ok(()) }
/// ```
pub struct Worker {
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Start building a worker that uses `client`'s connection.
    pub fn builder(client: &Client) -> WorkerBuilder {
        WorkerBuilder {
            broker: client.broker.clone(),
            shutdown: None,
            recover_interval: None,
            node: None,
            queues: Vec::new(),
            handlers: HashMap::new(),
            config: WorkerConfig {
                queues: Vec::new(),
                declared: Vec::new(),
                concurrency: 16,
                claim_batch: 256,
                lease: Duration::from_secs(30),
                job_timeout: Duration::from_secs(30 * 60),
                shutdown_timeout: Duration::from_secs(25),
                stop_grace: Duration::from_secs(1),
                spread_grace: Duration::from_millis(250),
                recover_interval: Duration::from_secs(5),
                janitor_interval: Duration::from_secs(60),
                max_idle: Duration::from_secs(30),
                node_heartbeat: Duration::from_secs(5),
                block: Duration::from_secs(10),
                retention: client.retention,
                retry: Arc::new(ExponentialBackoff::default()),
                ack_replicas: None,
            },
        }
    }

    /// The id this worker holds leases under (`node:random`).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// A handle that stops this worker.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// What this worker did so far.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerStats {
            completed: get(&c.completed),
            failed: get(&c.failed),
            stale: get(&c.stale),
            abandoned: get(&c.abandoned),
            handed_back: get(&c.handed_back),
            recovered: get(&c.recovered),
        }
    }

    /// Run until the shutdown handle is used, then drain and return. Fails at once, running
    /// nothing, if a queue's shard count differs from Redis' ([`WorkerBuilder::sharded_queue`]).
    pub async fn run(&self) -> Result<()> {
        let shared = &self.shared;
        for (queue, _, shards) in &shared.config.declared {
            shared.broker.declare_shards(queue, *shards).await?;
        }
        // Stops the background parts once the jobs are drained; separate from the graceful
        // token so leases keep being renewed while running jobs finish.
        let background = CancellationToken::new();
        // If this future is dropped before it returns, the spawned parts must not outlive it:
        // a heartbeat left behind would renew leases of jobs nobody runs, forever.
        let _abandon_on_drop = StopOnDrop {
            shared: shared.clone(),
            background: background.clone(),
        };
        let force = self.shutdown.force_token();
        let jobs = TaskTracker::new();
        let (acks, ack_rx) = tokio::sync::mpsc::unbounded_channel();

        let parts = vec![
            tokio::spawn(acker::run(shared.clone(), ack_rx)),
            tokio::spawn(heartbeat::run(shared.clone(), background.clone())),
            tokio::spawn(recoverer::run(shared.clone(), background.clone())),
            tokio::spawn(janitor::run(shared.clone(), background.clone())),
            tokio::spawn(relay::run(shared.clone(), background.clone())),
            tokio::spawn(registrar::run(shared.clone(), background.clone())),
        ];
        tracing::info!(worker = %shared.id, queues = ?shared.config.queues.iter().map(|(k, _)| &k.name).collect::<Vec<_>>(), "worker started");

        fetcher::run(shared.clone(), self.shutdown.graceful_token(), &jobs, acks).await;

        // Graceful drain: running jobs keep their leases until they finish, the timeout
        // passes or a force arrives; whatever still runs then is handed back.
        jobs.close();
        tokio::select! {
            _ = jobs.wait() => {}
            _ = tokio::time::sleep(shared.config.shutdown_timeout) => {
                tracing::warn!("shutdown timeout passed; handing running jobs back");
            }
            _ = force.cancelled() => {}
        }
        for (_, running) in shared.running_snapshot() {
            running.stop(StopReason::Shutdown);
        }
        // Processors hand their jobs back themselves; bound the wait in case Redis is gone.
        let _ = tokio::time::timeout(Duration::from_secs(10), jobs.wait()).await;
        background.cancel();
        for part in parts {
            let _ = part.await;
        }
        tracing::info!(worker = %shared.id, "worker stopped");
        Ok(())
    }
}

#[cfg(test)]
mod weight_tests {
    #[test]
    fn a_sharded_queue_shares_its_weight_among_its_physical_queues() {
        let q = |name: &str, w, n| (name.to_owned(), w, n);
        let got = super::physical_queues(&[q("plain", 2, 1), q("hot", 2, 3), q("warm", 1, 2)]);
        // lcm(1, 4, 3) = 12: plain 2 * 12; hot's 4 parts 2 * 12 / 4 each; warm's 3 parts 12 / 3.
        let weight = |prefix: &str| -> u32 {
            got.iter()
                .filter(|(p, _)| crate::shard::logical(p) == prefix)
                .map(|(_, w)| w)
                .sum()
        };
        assert_eq!(got.len(), 1 + 4 + 3);
        assert_eq!(weight("plain"), 24);
        assert_eq!(weight("hot"), 24);
        assert_eq!(weight("warm"), 12);
        assert!(
            got.iter()
                .filter(|(p, _)| p.starts_with("hot"))
                .all(|(_, w)| *w == 6)
        );
    }
}
