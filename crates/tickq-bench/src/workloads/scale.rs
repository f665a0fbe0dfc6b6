//! Deep queues: do enqueue, claim and memory stay flat as the queue grows? (issue 15, the
//! 1,000,000-job row)
//!
//! For each size N (default 20k, 100k, 300k, 1M), from an empty Redis:
//! 1. N no-op jobs are enqueued with `enqueue_bulk` in chunks of [`CHUNK`] (one call of a
//!    million is not what this measures); rate = N / the time of all chunks; memory = growth
//!    of `used_memory` per job.
//! 2. One worker of concurrency 64 drains a slice of [`SLICE`] jobs from the top of that deep
//!    queue: processing rate (first → last handler completion), Redis CPU per job, and the
//!    claim script's own time in Redis, p50 and p99, from the slow log (threshold 0 during
//!    the drain, then put back): an O(N) step in a claim shows there first.
//!
//! Flat means: every figure at 1M within 10% of the one at 20k.

use super::enqueue::noop_job;
use super::{BgWorker, Deadline, Measured, QUEUE, Sample, Target, ms, nearest_rank};
use anyhow::{Context, Result, ensure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tickq::{Job, JobError, Worker};

/// Jobs per `enqueue_bulk` call.
pub const CHUNK: u64 = 100_000;
/// Jobs the worker drains at each depth.
pub const SLICE: u64 = 10_000;

pub async fn deep_queues(target: &Target, sizes: &[u64], deadline: Deadline) -> Result<Measured> {
    let mut m = Measured::default();
    for &n in sizes {
        ensure!(n >= SLICE, "a scale size must be at least {SLICE} jobs");
        target.flushall().await?;
        let label = size_label(n);
        // A chunk's last reply waits behind the whole chunk: on a loaded machine that can
        // take longer than the client's default 5 s, which is not what this measures (the
        // slowest chunk is reported).
        let client = tickq::Client::connect_with(
            &target.url,
            &tickq::ConnectOptions::new().response_timeout(Duration::from_secs(60)),
        )
        .await
        .context("connecting tickq to Redis")?;

        let empty = Sample::take(target).await?;
        let t0 = Instant::now();
        let mut sent = 0;
        let mut slowest = 0f64;
        while sent < n {
            let chunk = CHUNK.min(n - sent);
            let jobs = (sent..sent + chunk).map(noop_job).collect();
            let c0 = Instant::now();
            client
                .enqueue_bulk(jobs)
                .await
                .with_context(|| format!("enqueue_bulk of jobs {sent}..{}", sent + chunk))?;
            slowest = slowest.max(c0.elapsed().as_secs_f64());
            sent += chunk;
        }
        let enqueue_s = t0.elapsed().as_secs_f64();
        let enqueued = Sample::take(target).await?;
        ensure!(
            super::pending(&client).await? == n,
            "after enqueuing {n} jobs the queue does not hold {n} pending ones"
        );
        m.metric(
            format!("bulk enqueue @{label}"),
            "jobs/s",
            n as f64 / enqueue_s,
        );
        let enqueue_cpu = empty.cpu_secs_between(&enqueued) * 1e6 / n as f64;
        m.metric(
            format!("redis CPU, enqueue @{label}"),
            "µs/job",
            enqueue_cpu,
        );
        let bytes = enqueued.used_memory_growth(&empty);
        m.metric(
            format!("redis memory @{label}"),
            "bytes/job",
            bytes as f64 / n as f64,
        );

        let drained = drain_slice(target, &client, deadline).await?;
        m.metric(format!("process-64 rate @{label}"), "jobs/s", drained.rate);
        m.metric(
            format!("redis CPU, drain @{label}"),
            "µs/job",
            drained.cpu_us_per_job,
        );
        m.metric(format!("claim p50 @{label}"), "µs", drained.claim_p50_us);
        m.metric(format!("claim p99 @{label}"), "µs", drained.claim_p99_us);
        m.fact(&format!("claims_{label}"), drained.claims);
        m.fact(&format!("slowest_chunk_s_{label}"), slowest);
        // Figures as they come, so a failure at a later size keeps the earlier ones.
        eprintln!(
            "  scale @{label}: bulk {:.0} jobs/s (slowest chunk {slowest:.2} s, Redis CPU \
             {enqueue_cpu:.1} µs/job), {:.0} B/job, \
             drain {:.0} jobs/s, {:.1} µs/job Redis CPU, claim p50 {:.0} µs p99 {:.0} µs",
            n as f64 / enqueue_s,
            bytes as f64 / n as f64,
            drained.rate,
            drained.cpu_us_per_job,
            drained.claim_p50_us,
            drained.claim_p99_us,
        );
    }
    m.fact("sizes", sizes.to_vec());
    m.fact("enqueue", format!("enqueue_bulk in chunks of {CHUNK}"));
    m.fact(
        "drain",
        format!("{SLICE} jobs by 1 in-process Worker, concurrency 64, at each depth"),
    );
    m.fact(
        "claim time",
        "Redis-side time of the claim script (SLOWLOG, threshold 0 during the drain)",
    );
    target.flushall().await?;
    Ok(m)
}

struct Drained {
    rate: f64,
    cpu_us_per_job: f64,
    claim_p50_us: f64,
    claim_p99_us: f64,
    claims: usize,
}

/// One worker of concurrency 64 runs [`SLICE`] jobs off the top of the queue.
async fn drain_slice(
    target: &Target,
    client: &tickq::Client,
    deadline: Deadline,
) -> Result<Drained> {
    let base = Instant::now();
    let count = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let last = Arc::new(AtomicU64::new(0));
    let (c, f, l) = (count.clone(), first.clone(), last.clone());
    let worker = Worker::builder(client)
        .queue(QUEUE, 1)
        .concurrency(64)
        .handler("noop", move |_job: Job| {
            let t = base.elapsed().as_nanos() as u64;
            f.fetch_min(t, Ordering::Relaxed);
            l.fetch_max(t, Ordering::Relaxed);
            c.fetch_add(1, Ordering::Release);
            async { Ok::<_, JobError>(()) }
        })
        .build()?;

    let slowlog = target.record_every_command().await?;
    let before = Sample::take(target).await?;
    let worker = BgWorker::spawn(worker);
    let waited = deadline
        .wait_for(
            "waiting for the worker to drain its slice",
            ms(1),
            async || Ok(count.load(Ordering::Acquire) >= SLICE),
        )
        .await;
    let stopped = worker.stop().await;
    let after = Sample::take(target).await;
    let entries = slowlog.finish().await;
    waited?;
    stopped?;
    let after = after?;
    let entries = entries?;

    let ran = count.load(Ordering::Acquire);
    let secs = (last.load(Ordering::Relaxed) - first.load(Ordering::Relaxed)) as f64 / 1e9;
    let mut claims: Vec<f64> = entries
        .iter()
        .filter(|e| e.is_script_on_key_ending(":pending"))
        .map(|e| e.micros as f64)
        .collect();
    claims.sort_by(f64::total_cmp);
    ensure!(
        !claims.is_empty(),
        "the slow log holds no claim (a script whose first key is the pending index)"
    );
    Ok(Drained {
        rate: (ran - 1) as f64 / secs,
        cpu_us_per_job: before.cpu_secs_between(&after) * 1e6 / ran as f64,
        claim_p50_us: nearest_rank(&claims, 50.0),
        claim_p99_us: nearest_rank(&claims, 99.0),
        claims: claims.len(),
    })
}

fn size_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::size_label;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_label(20_000), "20k");
        assert_eq!(size_label(1_000_000), "1M");
        assert_eq!(size_label(1_500_000), "1500k");
        assert_eq!(size_label(12_345), "12345");
    }
}
