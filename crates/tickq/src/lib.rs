//! tickq: a distributed job queue and scheduler on Redis.
//!
//! Producers enqueue [`NewJob`]s with a [`Client`]; any number of [`Worker`]s on any number of
//! machines claim them, run the handler registered for the job's kind, and report the outcome.
//! Redis is the only source of truth: every state change is one atomic script, and Redis'
//! clock decides what is due and what has expired.
//!
//! # Delivery
//!
//! At least once. A claimed job is *leased*: its worker renews the lease while the handler
//! runs; when a worker dies, stalls or loses Redis, the lease expires and the job runs again
//! elsewhere. Each claim carries a **fencing token** ([`Job::fence`]) that grows with every
//! claim, so a side effect can reject a write from an older holder. A holder that lost its
//! lease cannot ack, fail or renew the job. See `docs/delivery.md`.
//!
//! # Locks
//!
//! [`Client::lock`] gives a mutual-exclusion lease with a TTL: the [`LockGuard`] renews it in
//! the background, fires its lost signal ([`LockGuard::lost`]) when Redis gave the lock to
//! someone else or the lease ran out before a renewal succeeded (Redis stalled, this process
//! stopped), and carries a **fencing token** ([`LockGuard::fence`]) that grows with every
//! acquisition. The [`FencedStore`] keeps values in Redis that only the lock's latest holder can
//! write. Redlock is deliberately not used; `docs/locks.md` says why and what a failover does.
//!
//! ```no_run
//! use std::time::Duration;
//! use tickq::{Client, FencedWrite};
//!
//! # async fn export(_fence: u64) -> tickq::Result<()> { Ok(()) }
//! # async fn demo() -> tickq::Result<()> {
//! let client = Client::connect("redis://127.0.0.1:6379").await?;
//! let Some(guard) = client
//!     .lock("nightly-export")
//!     .ttl(Duration::from_secs(30))
//!     .wait(Duration::from_secs(60))
//!     .acquire()
//!     .await?
//! else {
//!     return Ok(()); // someone else holds it
//! };
//! tokio::select! {
//!     reason = guard.lost() => eprintln!("lock lost ({reason}): stopping"),
//!     done = export(guard.fence()) => done?,
//! }
//! if let FencedWrite::Stale { latest, .. } = guard.fenced_set("cursor", "2026-11-22").await? {
//!     eprintln!("holder {latest} took over; not recording the cursor");
//! }
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! # Unique jobs and queue limits
//!
//! [`NewJob::unique_for`] keeps a job from being enqueued twice while one with the same kind
//! and payload (or [`NewJob::unique_key`]) waits or runs; [`Inspector::set_limits`] caps a
//! queue's active jobs and its starts per interval across every node ([`QueueLimits`]). Both
//! are checked inside the scripts, so they hold for all nodes at once. See
//! `docs/queue-control.md`.
//!
//! ```no_run
//! # async fn demo(client: tickq::Client) -> tickq::Result<()> {
//! use std::time::Duration;
//! use tickq::{NewJob, QueueLimits, Rate};
//!
//! let report = NewJob::new("reports", "nightly").unique_for(Duration::from_secs(3600));
//! match client.enqueue(report).await {
//!     Ok(job) => println!("enqueued {}", job.id),
//!     Err(e) if e.kind() == tickq::ErrorKind::AlreadyExists => {
//!         println!("already there: {:?}", e.existing_job().map(|j| &j.id))
//!     }
//!     Err(e) => return Err(e),
//! }
//! let limits = QueueLimits { concurrency: Some(3), rate: Some(Rate::new(50, Duration::from_secs(1))) };
//! client.inspector().set_limits("emails", limits).await?;
//! # Ok(()) }
//! ```
//!
//! # Sharded queues
//!
//! On Redis Cluster one queue lives on one master. [`Client::shard_queue`] (or
//! [`WorkerBuilder::sharded_queue`]) stores a queue as K shards spread over the slot range, so
//! it uses every master; producers spread jobs (round robin, or [`NewJob::shard_key`]), workers
//! claim from every shard, and the inspector shows one queue ([`Inspector::shards`] shows each
//! part). See `docs/queue-control.md`.
//!
//! # Deploying safely
//!
//! [`Client::connect_with`] takes [`ConnectOptions`]: for `rediss://` with a private CA or a
//! client certificate, [`TlsFiles`]; a failed handshake is [`ErrorKind::Tls`] and names the
//! setting to fix. [`Client::doctor`] checks a deployment (Redis version, persistence, an
//! evicting `maxmemory-policy`, memory, this node's clock against Redis', this user's ACL) and
//! answers a serialisable [`doctor::Report`]. `docs/operations.md` has a least-privilege ACL.
//!
//! # Metrics
//!
//! Workers emit through the [`metrics`](https://docs.rs/metrics) facade: nothing is recorded
//! unless the application installs a recorder (Prometheus, StatsD, OpenTelemetry...). Install
//! it before the worker runs its first job; the `tickq` binary serves them at `GET /metrics`.
//!
//! | metric | kind | labels | meaning |
//! | --- | --- | --- | --- |
//! | `tickq_jobs_total` | counter | `queue`, `outcome` | jobs that ended an attempt, by outcome (below) |
//! | `tickq_job_duration_seconds` | histogram | `queue` | handler run time of one attempt, whatever its outcome |
//! | `tickq_queue_latency_seconds` | histogram | `queue` | claim time minus due time, both on Redis' clock |
//!
//! Outcomes are counted when Redis applied them, by the worker that reported them:
//! `completed` (acked), `failed` (attempt failed, will be retried), `dead` (failed for good or
//! killed), `cancelled`, `abandoned` (lease lost; the job runs again elsewhere) and
//! `handed_back` (returned to pending at shutdown, attempt not charged). An ack or failure
//! Redis refused because the worker no longer held the job is not counted. Queue sizes are
//! not emitted by the library: read them from [`Inspector::stats`] at scrape time.
//!
//! # A tour
//!
//! ```no_run
//! use tickq::{Client, Job, JobError, NewJob, Worker};
//! use std::time::Duration;
//!
//! # async fn tour() -> tickq::Result<()> {
//! let client = Client::connect("redis://127.0.0.1:6379").await?;
//!
//! // Now, later, in bulk.
//! client.enqueue(NewJob::new("emails", "welcome").payload(serde_json::json!({"user": 7}))).await?;
//! client.enqueue(NewJob::new("emails", "reminder").delay(Duration::from_secs(3600))).await?;
//! let jobs = (0..1000).map(|i| NewJob::new("emails", "digest").payload(i.into())).collect();
//! client.enqueue_bulk(jobs).await?;
//!
//! // Run them.
//! let worker = Worker::builder(&client)
//!     .queue("emails", 1)
//!     .concurrency(64)
//!     .handler("welcome", |job: Job| async move {
//!         let user: u64 = job.payload_as::<serde_json::Value>()?["user"].as_u64().unwrap_or(0);
//!         if user == 0 {
//!             return Err(JobError::kill("no user"));
//!         }
//!         Ok(())
//!     })
//!     .build()?;
//! worker.shutdown_handle().on_signals()?;
//! worker.run().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod broker;
mod client;
mod connect;
#[cfg(test)]
mod decode_tests;
pub mod doctor;
mod error;
mod events;
mod flow;
mod handler;
mod inspect;
mod job;
mod limits;
mod lock;
mod node;
mod queue;
mod retry;
mod schedule;
mod shard;
mod shutdown;
pub mod units;
mod worker;

pub use broker::memory::{DEFAULT_HIGH_WATER, validate_high_water as validate_memory_high_water};
pub use broker::{CancelOutcome, Retention, redact_url, validate_redis_url};
pub use client::Client;
pub use connect::{ConnectOptions, TlsFiles};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, Events, JobChange};
pub use flow::{
    Batch, FlowSubmitted, MAX_FLOW_STEPS, ParentFailure, Step, Workflow, step_job_id,
    validate_flow_id,
};
pub use handler::{FailAction, Handler, IntoJobResult, Job, JobError};
pub use inspect::{
    BulkOutcome, FlowCancelled, FlowInfo, FlowList, FlowRetried, FlowState, FlowStepView,
    FlowSummary, History, HistoryPoint, HistoryQuery, Inspector, JobActed, JobAction, JobFilter,
    JobPage, LockList, LockView, MAX_FLOW_LIST, MAX_PAGE, NodeList, Purged, QueueLimitsView,
    QueuePaused, ScheduleEntry, ScheduleList, SchedulePaused, ScheduleRemoved, ScheduleTriggered,
    ShardCounts, Stats,
};
pub use job::{
    DEFAULT_MAX_ATTEMPTS, Enqueued, JobInfo, JobState, NewJob, PRIORITY_MAX, PRIORITY_MIN,
    PartialEnqueue, Progress, validate_job_id, validate_queue_name,
};
pub use limits::{LimitsChange, QueueLimits, Rate};
pub use lock::{
    DEFAULT_LOCK_TTL, Fenced, FencedStore, FencedWrite, LockBuilder, LockGuard, LostReason,
    LostSignal, MIN_LOCK_TTL, Released, validate_lock_name,
};
pub use node::{NodeView, QueueWeight, RunningJob};
pub use queue::QueueCounts;
pub use retry::{ExponentialBackoff, FixedBackoff, RetryPolicy};
pub use schedule::{
    Catchup, CronError, CronErrorPart, CronSchedule, MAX_CATCHUP, MISFIRE_GRACE, Overlap,
    ScheduleInfo, ScheduleSpec, Scheduler, SchedulerBuilder, Task, Upserted,
};
pub use shard::MAX_SHARDS;
pub use shutdown::ShutdownHandle;
pub use worker::{MIN_LEASE, Worker, WorkerBuilder, WorkerStats, default_node_name};
