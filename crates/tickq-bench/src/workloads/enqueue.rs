//! Enqueue throughput, no worker running (bench-peers "Enqueue (a)").
//!
//! N no-op jobs whose only argument is the job index. The timer covers the enqueue calls only
//! (the client is connected and its scripts loaded before). Rate = N / elapsed. Afterwards the
//! queue must hold N pending jobs, and Redis `used_memory` growth per job is reported.

use super::{Measured, QUEUE, Sample, Target, connect, pending};
use anyhow::{Result, ensure};
use std::time::Instant;
use tickq::NewJob;

pub fn noop_job(i: u64) -> NewJob {
    NewJob::new(QUEUE, "noop").payload(serde_json::json!({ "i": i }))
}

/// Awaited PINGs over a redis-rs connection manager (what `tickq::Client` uses): how fast one
/// task can go round trip after round trip, with no tickq code at all.
pub async fn round_trip(target: &Target, n: u64) -> Result<Measured> {
    let client = redis::Client::open(target.url.as_str())?;
    let mut conn = redis::aio::ConnectionManager::new(client).await?;
    let before = Sample::take(target).await?;
    let t0 = Instant::now();
    for _ in 0..n {
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let after = Sample::take(target).await?;
    let mut m = Measured::default();
    m.metric("rate", "calls/s", n as f64 / elapsed);
    before.report_cpu(&after, n, &mut m);
    m.fact("n", n);
    m.fact("elapsed_s", elapsed);
    m.fact("api", "await PING per call (redis-rs ConnectionManager)");
    Ok(m)
}

pub async fn one_by_one(target: &Target, n: u64) -> Result<Measured> {
    let client = connect(target).await?;
    let before = Sample::take(target).await?;
    let t0 = Instant::now();
    for i in 0..n {
        client.enqueue(noop_job(i)).await?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    finish(
        target,
        &client,
        n,
        elapsed,
        before,
        "await client.enqueue() per job",
    )
    .await
}

pub async fn bulk(target: &Target, n: u64) -> Result<Measured> {
    let client = connect(target).await?;
    let before = Sample::take(target).await?;
    // Building the jobs is inside the timer, as BullMQ's `addBulk(Array.from(...))` is.
    let t0 = Instant::now();
    let answers = client.enqueue_bulk((0..n).map(noop_job).collect()).await?;
    let elapsed = t0.elapsed().as_secs_f64();
    ensure!(
        answers.iter().all(|a| a.created),
        "enqueue_bulk did not create every job"
    );
    finish(
        target,
        &client,
        n,
        elapsed,
        before,
        "client.enqueue_bulk(all N jobs)",
    )
    .await
}

async fn finish(
    target: &Target,
    client: &tickq::Client,
    n: u64,
    elapsed: f64,
    before: Sample,
    api: &str,
) -> Result<Measured> {
    // Sampled before the check below, so its commands do not count as enqueue work.
    let after = Sample::take(target).await?;
    let queued = pending(client).await?;
    ensure!(queued == n, "expected {n} pending jobs, found {queued}");
    let mut m = Measured::default();
    m.metric("rate", "jobs/s", n as f64 / elapsed);
    before.report_cpu(&after, n, &mut m);
    before.report_memory(&after, n, &mut m);
    m.fact("n", n);
    m.fact("elapsed_s", elapsed);
    m.fact("api", api);
    Ok(m)
}
