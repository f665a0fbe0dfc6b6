//! Processing throughput (bench-peers "Processing (b)").
//!
//! N no-op jobs are enqueued in bulk first, then one in-process worker drains them. Like
//! bench-peers does for Celery, the handler notes its completion instant in process memory
//! (no Redis I/O on the per-job path): rate = (N − 1) / (last − first completion), so worker
//! start-up is excluded. The wall time runs from starting the worker until Redis has every
//! job acked (`processed` = N in the inspector's counts).

use super::enqueue::noop_job;
use super::{BgWorker, Deadline, Measured, QUEUE, Sample, Target, connect, ms, pending};
use anyhow::{Result, ensure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tickq::{Job, JobError, JobState, Worker};

/// First and last handler completion, as nanoseconds since `base`, and how many.
struct Completions {
    base: Instant,
    first: AtomicU64,
    last: AtomicU64,
    count: AtomicU64,
}

impl Completions {
    fn new() -> Completions {
        Completions {
            base: Instant::now(),
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn record(&self) {
        let t = self.base.elapsed().as_nanos() as u64;
        self.first.fetch_min(t, Ordering::Relaxed);
        self.last.fetch_max(t, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    fn secs(&self, at: &AtomicU64) -> f64 {
        at.load(Ordering::Relaxed) as f64 / 1e9
    }
}

pub async fn drain(
    target: &Target,
    n: u64,
    concurrency: usize,
    watched: bool,
    deadline: Deadline,
) -> Result<Measured> {
    let client = connect(target).await?;
    let empty = Sample::take(target).await?;
    client.enqueue_bulk((0..n).map(noop_job).collect()).await?;
    ensure!(pending(&client).await? == n, "pre-enqueue incomplete");
    let enqueued = Sample::take(target).await?;

    let done = Arc::new(Completions::new());
    let recorder = done.clone();
    let worker = Worker::builder(&client)
        .queue(QUEUE, 1)
        .concurrency(concurrency)
        .handler("noop", move |_job: Job| {
            let recorder = recorder.clone();
            async move {
                recorder.record();
                Ok::<_, JobError>(())
            }
        })
        .build()?;

    let watcher = match watched {
        true => Some(super::admin::Watcher::start(&client).await?),
        false => None,
    };
    let spawned = done.base.elapsed().as_secs_f64();
    let worker = BgWorker::spawn(worker);
    deadline
        .wait_for(
            "waiting for the handlers to run every job",
            ms(2),
            async || Ok(done.count.load(Ordering::Acquire) >= n),
        )
        .await?;
    let inspector = client.inspector();
    deadline
        .wait_for("waiting for every job to be acked", ms(2), async || {
            Ok(inspector.counts(QUEUE).await?.processed >= n)
        })
        .await?;
    let all_acked = done.base.elapsed().as_secs_f64();
    let drained = Sample::take(target).await?;
    worker.stop().await?;

    let counts = inspector.counts(QUEUE).await?;
    let state = |s: JobState| counts.states.get(&s).copied().unwrap_or(0);
    ensure!(
        counts.processed == n
            && counts.failed == 0
            && state(JobState::Pending) == 0
            && state(JobState::Active) == 0,
        "after the run, expected {n} processed and nothing pending, active or failed: {counts:?}"
    );
    ensure!(
        done.count.load(Ordering::Acquire) == n,
        "the handler ran {} times for {n} jobs",
        done.count.load(Ordering::Acquire)
    );

    let (first, last) = (done.secs(&done.first), done.secs(&done.last));
    let mut m = Measured::default();
    m.metric("rate first→last", "jobs/s", (n - 1) as f64 / (last - first));
    m.metric("wall, start→all acked", "s", all_acked - spawned);
    m.metric("start→first job", "ms", (first - spawned) * 1e3);
    // Redis CPU of the drain (claims, acks and the bench's polling of the counts) only;
    // memory of the N jobs as enqueued.
    enqueued.report_cpu(&drained, n, &mut m);
    empty.report_memory(&enqueued, n, &mut m);
    m.fact("n", n);
    m.fact("completed", counts.processed);
    m.fact("first_to_last_s", last - first);
    m.fact(
        "workers",
        format!("1 in-process Worker, concurrency {concurrency}"),
    );
    if let Some(watcher) = watcher {
        let (messages, bytes) = watcher.stop();
        m.metric(
            "SSE messages to the watcher",
            "msgs/s",
            messages as f64 / (all_acked - spawned),
        );
        m.fact("sse_messages", messages);
        m.fact("sse_bytes", bytes);
    }
    Ok(m)
}
