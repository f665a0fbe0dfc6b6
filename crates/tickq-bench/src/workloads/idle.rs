//! What an idle worker costs Redis: commands per second, by command, from `INFO commandstats`
//! sampled before and after a window in which nothing but the worker talks to Redis.
//! Commands run inside scripts are counted by Redis 7 too, under their own names.

use super::{BgWorker, Deadline, Measured, QUEUE, Target, connect};
use anyhow::{Result, ensure};
use std::time::{Duration, Instant};
use tickq::{Job, JobError, Worker};

/// Time the worker gets to settle (first claim, wake-stream connection) before sampling.
const SETTLE: Duration = Duration::from_secs(2);

pub async fn commands(target: &Target, window: Duration, deadline: Deadline) -> Result<Measured> {
    ensure!(
        SETTLE + window < deadline.remaining(),
        "the idle window does not fit in the run's time limit"
    );
    let client = connect(target).await?;
    let worker = Worker::builder(&client)
        .queue(QUEUE, 1)
        .concurrency(64)
        .handler("noop", |_job: Job| async { Ok::<_, JobError>(()) })
        .build()?;
    let worker = BgWorker::spawn(worker);
    tokio::time::sleep(SETTLE).await;

    let before = target.command_stats().await?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let after = target.command_stats().await?;
    let secs = t0.elapsed().as_secs_f64();
    worker.stop().await?;

    let mut m = Measured::default();
    let mut total = 0.0;
    let mut by_command = Vec::new();
    for (cmd, stat) in &after {
        let mut delta = stat.calls - before.get(cmd).map_or(0, |b| b.calls);
        if cmd == "info" {
            delta = delta.saturating_sub(1); // our own first sample
        }
        if delta > 0 {
            total += delta as f64;
            by_command.push((cmd.clone(), delta));
        }
    }
    m.metric("all commands", "cmd/s", total / secs);
    for (cmd, delta) in by_command {
        m.metric(format!("  {cmd}"), "cmd/s", delta as f64 / secs);
    }
    m.fact("window_s", secs);
    m.fact(
        "workers",
        "1 in-process Worker, concurrency 64, empty queue",
    );
    Ok(m)
}
