//! The workloads, one module per family, and what they share: the measurement record, a
//! deadline, a worker running in the background, and a readiness probe.

mod admin;
mod enqueue;
mod floor;
mod flow;
mod idle;
mod latency;
mod process;
mod scale;

use crate::target::{CommandStat, Target};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tickq::{Client, Job, JobError, NewJob, ShutdownHandle, Worker, WorkerBuilder};
use tokio::task::JoinHandle;

/// Every workload uses this one queue.
pub const QUEUE: &str = "bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// N PINGs one by one, each awaited, over the connection type tickq uses: the round-trip
    /// floor under enqueue-one on this machine and runtime.
    #[value(name = "round-trip")]
    RoundTrip,
    /// N jobs enqueued one by one, each call awaited.
    EnqueueOne,
    /// N jobs in one `enqueue_bulk` call.
    EnqueueBulk,
    /// N no-op jobs pre-enqueued, drained by one worker of concurrency 8.
    #[value(name = "process-8")]
    Process8,
    /// The same with concurrency 64.
    #[value(name = "process-64")]
    Process64,
    /// process-64 while one client watches the HTTP API's live events (`/api/events`) of a
    /// tickq-web router on loopback: what watching costs throughput and Redis.
    #[value(name = "process-64-watched")]
    Process64Watched,
    /// N pending jobs: the first page, a page deep behind a cursor, and a payload search that
    /// finds the one matching job in the middle (the HTTP API's job list and search).
    Search,
    /// Enqueue-to-start latency of a steady one-by-one stream into an idle worker.
    Latency,
    /// 200 jobs delayed 2 s, submitted over 1 s: lateness of their start.
    Delayed,
    /// 1,000 jobs delayed 2 s, submitted over 2 s.
    #[value(name = "delayed-1000")]
    Delayed1000,
    /// Cron ticks of `@every 1s` for 20 s: lateness of each tick's job start.
    Cron,
    /// Commands per second an idle worker sends.
    Idle,
    /// A 1,000-step fan-out/fan-in workflow against 1,000 plain jobs: submit time and the
    /// overhead per step of settling the DAG (docs/workflows.md).
    #[value(name = "flow-1000")]
    Flow1000,
    /// flow-1000 with its 998 middle steps in three other queues: every edge crosses queues
    /// (the outbox and the relay; docs/workflows.md).
    #[value(name = "flow-1000-queues")]
    Flow1000Queues,
    /// Deep queues (--scale-sizes, default 20k, 100k, 300k, 1M waiting jobs): bulk enqueue
    /// rate, memory per job, and a concurrency-64 drain of 10,000 jobs at each depth (rate,
    /// Redis CPU, the claim script's p50/p99 time in Redis). Not in the default set: it needs
    /// about 2 GB of Redis memory and a minute.
    Scale,
    /// The claim and ack scripts alone, in batches of 64 and of 8 with one call in flight:
    /// Redis' time per job of tickq's shipped scripts beside a lean lab layout with no per-job
    /// record on the hot path, on the same jobs (what a layout change can still win on this
    /// Redis). Not in the default set: it measures designs, not tickq's throughput.
    #[value(name = "layout-floor")]
    LayoutFloor,
}

impl Workload {
    pub const ALL: [Workload; 14] = [
        Workload::RoundTrip,
        Workload::EnqueueOne,
        Workload::EnqueueBulk,
        Workload::Process8,
        Workload::Process64,
        Workload::Process64Watched,
        Workload::Search,
        Workload::Latency,
        Workload::Delayed,
        Workload::Delayed1000,
        Workload::Cron,
        Workload::Idle,
        Workload::Flow1000,
        Workload::Flow1000Queues,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::RoundTrip => "round-trip",
            Workload::EnqueueOne => "enqueue-one",
            Workload::EnqueueBulk => "enqueue-bulk",
            Workload::Process8 => "process-8",
            Workload::Process64 => "process-64",
            Workload::Process64Watched => "process-64-watched",
            Workload::Search => "search",
            Workload::Latency => "latency",
            Workload::Delayed => "delayed",
            Workload::Delayed1000 => "delayed-1000",
            Workload::Cron => "cron",
            Workload::Idle => "idle",
            Workload::Flow1000 => "flow-1000",
            Workload::Flow1000Queues => "flow-1000-queues",
            Workload::Scale => "scale",
            Workload::LayoutFloor => "layout-floor",
        }
    }
}

/// Knobs shared by all workloads (from the command line).
pub struct Params {
    pub n: u64,
    pub timeout: Duration,
    pub latency_secs: f64,
    pub latency_rate: u32,
    pub idle_window: Duration,
    pub scale_sizes: Vec<u64>,
}

/// One number of one run.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
}

/// What one successful run measured, plus facts worth keeping in the JSON (counts, setup).
#[derive(Debug, Default)]
pub struct Measured {
    pub metrics: Vec<Metric>,
    pub facts: serde_json::Map<String, serde_json::Value>,
}

impl Measured {
    pub fn metric(&mut self, name: impl Into<String>, unit: &'static str, value: f64) {
        self.metrics.push(Metric {
            name: name.into(),
            unit,
            value,
        });
    }

    pub fn fact(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.facts.insert(name.to_owned(), value.into());
    }
}

pub async fn run(workload: Workload, target: &Target, p: &Params) -> Result<Measured> {
    let deadline = Deadline::after(p.timeout);
    match workload {
        Workload::RoundTrip => enqueue::round_trip(target, p.n).await,
        Workload::EnqueueOne => enqueue::one_by_one(target, p.n).await,
        Workload::EnqueueBulk => enqueue::bulk(target, p.n).await,
        Workload::Process8 => process::drain(target, p.n, 8, false, deadline).await,
        Workload::Process64 => process::drain(target, p.n, 64, false, deadline).await,
        Workload::Process64Watched => process::drain(target, p.n, 64, true, deadline).await,
        Workload::Search => admin::search(target, p.n).await,
        Workload::Latency => {
            let jobs = (p.latency_secs * f64::from(p.latency_rate)).ceil() as u64;
            latency::enqueue_to_start(target, jobs, p.latency_rate, deadline).await
        }
        Workload::Delayed => latency::delayed(target, 200, Duration::from_secs(1), deadline).await,
        Workload::Delayed1000 => {
            latency::delayed(target, 1000, Duration::from_secs(2), deadline).await
        }
        Workload::Cron => latency::cron_ticks(target, 20, deadline).await,
        Workload::Idle => idle::commands(target, p.idle_window, deadline).await,
        Workload::Flow1000 => flow::fan_in(target, deadline, false).await,
        Workload::Flow1000Queues => flow::fan_in(target, deadline, true).await,
        Workload::Scale => scale::deep_queues(target, &p.scale_sizes, deadline).await,
        Workload::LayoutFloor => floor::floor(target, p.n).await,
    }
}

/// Redis' memory and CPU use at one moment, to report their growth per job.
pub struct Sample {
    used_memory: u64,
    cpu_secs: f64,
    commands: BTreeMap<String, CommandStat>,
}

impl Sample {
    pub async fn take(target: &Target) -> Result<Sample> {
        Ok(Sample {
            used_memory: target.used_memory().await?,
            cpu_secs: target.cpu_secs().await?,
            commands: target.command_stats().await?,
        })
    }

    /// "redis CPU": µs of Redis main-thread CPU per job between the two samples; and, as the
    /// fact `redis_commands`, each command's calls and µs per job (the `--commandstats` view).
    pub fn report_cpu(&self, after: &Sample, n: u64, m: &mut Measured) {
        let secs = after.cpu_secs - self.cpu_secs;
        m.metric("redis CPU", "µs/job", secs * 1e6 / n as f64);
        m.fact("redis_commands", self.commands_per_job(after, n));
    }

    /// For runs that call scripts directly (`layout-floor`): `<label>: script time` (µs of
    /// `EVALSHA` per job, the commands inside included), `<label>: redis CPU`, and the fact
    /// `redis_commands <label>`.
    pub fn report_script_cost(&self, after: &Sample, n: u64, label: &str, m: &mut Measured) {
        let commands = self.commands_per_job(after, n);
        let script = commands
            .get("evalsha")
            .and_then(|c| c["usec_per_job"].as_f64())
            .unwrap_or(0.0);
        m.metric(format!("{label}: script time"), "µs/job", script);
        let secs = after.cpu_secs - self.cpu_secs;
        m.metric(
            format!("{label}: redis CPU"),
            "µs/job",
            secs * 1e6 / n as f64,
        );
        m.fact(&format!("redis_commands {label}"), commands);
    }

    /// Each command's calls and µs per job from this sample to `after`.
    fn commands_per_job(
        &self,
        after: &Sample,
        n: u64,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut commands = serde_json::Map::new();
        for (cmd, stat) in &after.commands {
            let before = self.commands.get(cmd).copied().unwrap_or_default();
            let calls = stat.calls - before.calls;
            // The two INFO calls of the samples themselves are not the workload's.
            if calls == 0 || cmd == "info" {
                continue;
            }
            let usec = stat.usec - before.usec;
            commands.insert(
                cmd.clone(),
                serde_json::json!({
                    "calls": calls,
                    "calls_per_job": calls as f64 / n as f64,
                    "usec_per_job": usec as f64 / n as f64,
                }),
            );
        }
        commands
    }

    /// Growth of `used_memory` (bytes) from `earlier` to this sample.
    pub fn used_memory_growth(&self, earlier: &Sample) -> u64 {
        self.used_memory.saturating_sub(earlier.used_memory)
    }

    /// Redis main-thread CPU seconds from this sample to `later`.
    pub fn cpu_secs_between(&self, later: &Sample) -> f64 {
        later.cpu_secs - self.cpu_secs
    }

    /// "redis memory": growth of `used_memory` per job between the two samples.
    pub fn report_memory(&self, after: &Sample, n: u64, m: &mut Measured) {
        let bytes = after.used_memory.saturating_sub(self.used_memory);
        m.metric("redis memory", "bytes/job", bytes as f64 / n as f64);
    }
}

/// When a run must be done by.
#[derive(Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        Deadline(Instant::now() + limit)
    }

    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Poll `done` every `every` until it holds; fail naming `what` once the deadline passed.
    pub async fn wait_for(
        self,
        what: &str,
        every: Duration,
        mut done: impl AsyncFnMut() -> Result<bool>,
    ) -> Result<()> {
        loop {
            if done().await? {
                return Ok(());
            }
            if Instant::now() >= self.0 {
                bail!("timed out {what}");
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Wall-clock now as unix nanoseconds (what a payload carries between processes' clocks;
/// here producer and worker share one process, so one clock).
pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// Nearest-rank percentile of sorted values, as bench-peers computes it.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    sorted[k.min(sorted.len()) - 1]
}

/// A fresh client: a new connection per run, so nothing cached in a client (such as the
/// queue registry) outlives the run's FLUSHALL. Connecting loads the scripts, outside any
/// timing.
pub async fn connect(target: &Target) -> Result<Client> {
    Client::connect(&target.url)
        .await
        .context("connecting tickq to Redis")
}

/// Pending jobs of the bench queue right now.
pub async fn pending(client: &Client) -> Result<u64> {
    let counts = client.inspector().counts(QUEUE).await?;
    Ok(counts
        .states
        .get(&tickq::JobState::Pending)
        .copied()
        .unwrap_or(0))
}

/// A worker running on its own task. `stop` shuts it down gracefully; dropping it without
/// `stop` (an error or a timeout) forces it down, so no run leaves a worker behind.
pub struct BgWorker {
    shutdown: ShutdownHandle,
    task: Option<JoinHandle<tickq::Result<()>>>,
}

impl BgWorker {
    pub fn spawn(worker: Worker) -> BgWorker {
        let shutdown = worker.shutdown_handle();
        let task = tokio::spawn(async move { worker.run().await });
        BgWorker {
            shutdown,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.shutdown();
        let task = self.task.take().expect("stopped once");
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(joined) => Ok(joined.context("worker task panicked")??),
            Err(_) => bail!("worker did not shut down within 30 s"),
        }
    }
}

impl Drop for BgWorker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.shutdown.force();
            task.abort();
        }
    }
}

/// Registers a `probe` handler; `wait` enqueues one probe job and waits until it ran, which
/// shows the worker is up and consuming (bench-peers does the same before its delayed test).
#[derive(Clone, Default)]
pub struct Probe(Arc<AtomicBool>);

impl Probe {
    const KIND: &'static str = "probe";

    pub fn register(&self, builder: WorkerBuilder) -> WorkerBuilder {
        let seen = self.0.clone();
        builder.handler(Self::KIND, move |_job: Job| {
            let seen = seen.clone();
            async move {
                seen.store(true, Ordering::Release);
                Ok::<_, JobError>(())
            }
        })
    }

    pub async fn wait(&self, client: &Client, deadline: Deadline) -> Result<()> {
        client.enqueue(NewJob::new(QUEUE, Self::KIND)).await?;
        deadline
            .wait_for(
                "waiting for the worker to run a probe job",
                ms(5),
                async || Ok(self.0.load(Ordering::Acquire)),
            )
            .await
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_matches_bench_peers() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), 100.0);
        assert_eq!(nearest_rank(&v, 99.0), 198.0);
        assert_eq!(nearest_rank(&v, 100.0), 200.0);
        assert_eq!(nearest_rank(&[7.0], 50.0), 7.0);
    }
}
