//! How soon jobs start: enqueue-to-start latency of immediate jobs, and lateness of delayed
//! jobs (bench-peers "Delayed jobs (c)").
//!
//! In both, a worker is started and shown to be consuming (one probe job must run) before
//! anything is measured. Each job's payload carries a wall-clock instant (unix ns); its
//! handler compares that with the wall clock at its first line.

use super::unix_ns;
use super::{BgWorker, Deadline, Measured, Probe, QUEUE, Target, connect, ms, nearest_rank};
use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq::{Client, Job, JobError, NewJob, Worker};
use tokio::time::Instant;

/// The worker both workloads measure: one in-process Worker; its handler `kind` records
/// `start − payload["t_ns"]` in nanoseconds.
async fn start_worker(
    client: &Client,
    concurrency: usize,
    deadline: Deadline,
) -> Result<(BgWorker, Arc<Mutex<Vec<i64>>>)> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let record = samples.clone();
    let probe = Probe::default();
    let builder = Worker::builder(client)
        .queue(QUEUE, 1)
        .concurrency(concurrency)
        .handler("timed", move |job: Job| {
            let started = unix_ns();
            let record = record.clone();
            async move {
                let t_ns = job.payload()["t_ns"]
                    .as_i64()
                    .ok_or_else(|| JobError::kill("payload has no t_ns"))?;
                record.lock().expect("samples").push(started - t_ns);
                Ok::<_, JobError>(())
            }
        })
        .handler("tick", {
            let record = samples.clone();
            move |job: Job| {
                let started = unix_ns();
                let record = record.clone();
                async move {
                    // A cron job carries its tick's nominal instant (Unix ms).
                    let tick_ms: i64 = job
                        .meta("scheduled_at")
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| JobError::kill("job has no scheduled_at"))?;
                    record
                        .lock()
                        .expect("samples")
                        .push(started - tick_ms * 1_000_000);
                    Ok::<_, JobError>(())
                }
            }
        });
    let worker = BgWorker::spawn(probe.register(builder).build()?);
    probe.wait(client, deadline).await?;
    Ok((worker, samples))
}

fn timed_job(t_ns: i64) -> NewJob {
    NewJob::new(QUEUE, "timed").payload(serde_json::json!({ "t_ns": t_ns }))
}

async fn wait_for_samples(
    samples: &Mutex<Vec<i64>>,
    jobs: u64,
    deadline: Deadline,
) -> Result<Vec<i64>> {
    deadline
        .wait_for("waiting for every job to start", ms(5), async || {
            Ok(samples.lock().expect("samples").len() as u64 >= jobs)
        })
        .await?;
    Ok(std::mem::take(&mut *samples.lock().expect("samples")))
}

/// `jobs` immediate jobs enqueued one by one (each awaited) at `rate` per second into an idle
/// worker of concurrency 64; latency = handler start − wall clock just before the enqueue.
pub async fn enqueue_to_start(
    target: &Target,
    jobs: u64,
    rate: u32,
    deadline: Deadline,
) -> Result<Measured> {
    let client = connect(target).await?;
    let (worker, samples) = start_worker(&client, 64, deadline).await?;

    let step = Duration::from_secs_f64(1.0 / f64::from(rate));
    let t0 = Instant::now();
    for i in 0..jobs {
        // A steady schedule: a late call is not made up for by bunching the next ones.
        tokio::time::sleep_until(t0 + step.mul_f64(i as f64)).await;
        client.enqueue(timed_job(unix_ns())).await?;
    }
    let sent_over = t0.elapsed().as_secs_f64();
    let samples = wait_for_samples(&samples, jobs, deadline).await?;
    worker.stop().await?;

    let mut hist = Histogram::<u64>::new(3).context("histogram")?;
    for ns in samples {
        // A negative latency would mean the clock stepped back; count it as zero.
        hist.record((ns.max(0) as u64) / 1000)?;
    }
    let ms_at = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    let mut m = Measured::default();
    m.metric("latency p50", "ms", ms_at(0.50));
    m.metric("latency p90", "ms", ms_at(0.90));
    m.metric("latency p99", "ms", ms_at(0.99));
    m.metric("latency max", "ms", hist.max() as f64 / 1e3);
    m.fact("jobs", jobs);
    m.fact("target_rate_per_s", rate);
    m.fact("achieved_rate_per_s", jobs as f64 / sent_over);
    m.fact("workers", "1 in-process Worker, concurrency 64");
    Ok(m)
}

/// `jobs` jobs, each delayed by 2 s, submitted evenly over `spread` (job i at
/// t0 + i × spread / jobs) into a running worker of concurrency 8 (as the peers' worker
/// setups). Lateness = handler start − (wall clock just before the enqueue call + 2 s).
pub async fn delayed(
    target: &Target,
    jobs: u64,
    spread: Duration,
    deadline: Deadline,
) -> Result<Measured> {
    const DELAY: Duration = Duration::from_secs(2);
    let client = connect(target).await?;
    let (worker, samples) = start_worker(&client, 8, deadline).await?;

    let step = spread.div_f64(jobs as f64);
    let t0 = Instant::now();
    for i in 0..jobs {
        tokio::time::sleep_until(t0 + step.mul_f64(i as f64)).await;
        let intended = unix_ns() + DELAY.as_nanos() as i64;
        client.enqueue(timed_job(intended).delay(DELAY)).await?;
    }
    let samples = wait_for_samples(&samples, jobs, deadline).await?;
    worker.stop().await?;
    ensure!(
        samples.len() as u64 == jobs,
        "{} of {jobs} jobs ran",
        samples.len()
    );

    let mut late_ms: Vec<f64> = samples.iter().map(|&ns| ns as f64 / 1e6).collect();
    late_ms.sort_by(f64::total_cmp);
    let mut m = Measured::default();
    m.metric("lateness p50", "ms", nearest_rank(&late_ms, 50.0));
    m.metric("lateness p99", "ms", nearest_rank(&late_ms, 99.0));
    m.metric("lateness max", "ms", late_ms[late_ms.len() - 1]);
    m.metric("lateness min", "ms", late_ms[0]);
    m.fact("jobs", jobs);
    m.fact("spread_s", spread.as_secs_f64());
    m.fact("workers", "1 in-process Worker, concurrency 8");
    m.fact("api", "client.enqueue(NewJob::delay(2 s))");
    Ok(m)
}

/// A schedule `@every 1s` with one task, a Scheduler and a worker of concurrency 8 in this
/// process; lateness = handler start − the tick's nominal instant, over `ticks` ticks.
pub async fn cron_ticks(target: &Target, ticks: u64, deadline: Deadline) -> Result<Measured> {
    let client = connect(target).await?;
    let (worker, samples) = start_worker(&client, 8, deadline).await?;
    let spec = tickq::ScheduleSpec::new("bench", QUEUE, "@every 1s")
        .task(tickq::Task::new("tick", serde_json::Value::Null));
    client.upsert_schedule(&spec).await?;
    let scheduler = Arc::new(tickq::Scheduler::builder(&client).build());
    let runner = scheduler.clone();
    let task = tokio::spawn(async move { runner.run().await });
    let samples = wait_for_samples(&samples, ticks, deadline).await;
    scheduler.shutdown_handle().shutdown();
    task.await.context("scheduler task")??;
    client.inspector().remove_schedule("bench").await?;
    worker.stop().await?;
    let samples = samples?;

    let mut late_ms: Vec<f64> = samples.iter().map(|&ns| ns as f64 / 1e6).collect();
    late_ms.sort_by(f64::total_cmp);
    let mut m = Measured::default();
    m.metric("lateness p50", "ms", nearest_rank(&late_ms, 50.0));
    m.metric("lateness p99", "ms", nearest_rank(&late_ms, 99.0));
    m.metric("lateness max", "ms", late_ms[late_ms.len() - 1]);
    m.fact("ticks", samples.len() as u64);
    m.fact("schedule", "@every 1s, one task");
    m.fact("workers", "1 in-process Scheduler + Worker, concurrency 8");
    Ok(m)
}
