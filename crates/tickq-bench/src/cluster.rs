//! The `sharded` workload: one sharded queue on a local N-master Redis Cluster (started
//! through tickq-testkit), with the Redis CPU each master spent per job it served.
//!
//! Per run: FLUSHALL every master, declare the queue with K shards (default: one per master),
//! enqueue N no-op jobs in one `enqueue_bulk`, then drain them with one in-process worker of
//! concurrency 64. Each master's main-thread CPU (`INFO cpu`) is sampled before the enqueue,
//! between the two phases and after the drain, and divided by the jobs its shards hold (each
//! shard's `processed`, mapped to a master by its hash slot). Scaling reads from the per-master
//! figures: if they stay flat as masters are added, every master does 1/N of the work at the
//! same cost per job, so N masters carry N times the load.

use anyhow::{Context, Result, ensure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tickq::{Client, Job, JobError, NewJob, Worker};
use tickq_testkit::TestCluster;

const QUEUE: &str = "bench";

/// One master's figures of one run.
struct MasterRun {
    jobs: u64,
    enqueue_us_per_job: f64,
    drain_us_per_job: f64,
}

pub async fn run(masters: usize, shards: u32, n: u64, runs: u32, timeout: Duration) -> Result<()> {
    ensure!(masters >= 1, "--cluster needs at least 1 master");
    let cluster = tokio::task::spawn_blocking(move || TestCluster::start(masters))
        .await
        .context("starting the cluster")?;
    let version = info(&cluster, 0, "server")
        .await?
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    println!(
        "sharded: {n} no-op jobs, one queue of {shards} shards on a local {masters}-master Redis \
         Cluster (Redis {version}, no persistence), enqueue_bulk then one worker of concurrency \
         64; {runs} run(s)"
    );
    println!(
        "run  master  jobs    share   enqueue µs/job  drain µs/job  (Redis main-thread CPU per job the master served)"
    );
    let mut drain_medians: Vec<Vec<f64>> = vec![Vec::new(); masters];
    let mut rates = Vec::new();
    for r in 1..=runs {
        let (per_master, rate) = tokio::time::timeout(timeout, one_run(&cluster, shards, n))
            .await
            .with_context(|| format!("run {r} did not finish in {} s", timeout.as_secs()))??;
        for (i, m) in per_master.iter().enumerate() {
            println!(
                "{r:>3}  {i:>6}  {:>6}  {:>5.1}%  {:>14.2}  {:>12.2}",
                m.jobs,
                m.jobs as f64 * 100.0 / n as f64,
                m.enqueue_us_per_job,
                m.drain_us_per_job
            );
            drain_medians[i].push(m.drain_us_per_job);
        }
        println!("{r:>3}     all  {n:>6}  processing rate {rate:.0} jobs/s");
        rates.push(rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per_master: Vec<String> = drain_medians
        .iter_mut()
        .map(|v| format!("{:.2}", median(v)))
        .collect();
    println!(
        "median: {masters} master(s), drain Redis CPU per job served, by master: {} µs; \
         processing {:.0} jobs/s",
        per_master.join(" / "),
        median(&mut rates)
    );
    Ok(())
}

async fn one_run(cluster: &TestCluster, shards: u32, n: u64) -> Result<(Vec<MasterRun>, f64)> {
    let masters = cluster.urls().len();
    for i in 0..masters {
        let mut conn = node_conn(cluster, i).await?;
        redis::cmd("FLUSHALL")
            .exec_async(&mut conn)
            .await
            .context("FLUSHALL")?;
    }
    // A new client per run: the shard count it caches went with the FLUSHALL.
    let client = Client::connect(&cluster.cluster_url()).await?;
    client.shard_queue(QUEUE, shards).await?;

    let before = cpu(cluster).await?;
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob::new(QUEUE, "noop").payload(i.into()))
        .collect();
    client.enqueue_bulk(jobs).await?;
    let enqueued = cpu(cluster).await?;

    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let worker = Worker::builder(&client)
        .sharded_queue(QUEUE, 1, shards)
        .concurrency(64)
        .handler("noop", move |_job: Job| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::Relaxed);
                Ok::<_, JobError>(())
            }
        })
        .build()?;
    let handle = worker.shutdown_handle();
    let started = Instant::now();
    let running = tokio::spawn(async move { worker.run().await });
    let inspector = client.inspector();
    loop {
        if done.load(Ordering::Relaxed) >= n && inspector.counts(QUEUE).await?.processed >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let drained = cpu(cluster).await?;
    handle.shutdown();
    running.await??;

    let mut served = vec![0u64; masters];
    for s in inspector.shards(QUEUE).await? {
        served[cluster.slot_owner(s.slot)] += s.counts.processed;
    }
    ensure!(
        served.iter().sum::<u64>() == n,
        "processed {served:?}, expected {n} in all"
    );
    let per_job = |secs: f64, jobs: u64| secs * 1e6 / jobs.max(1) as f64;
    let per_master = (0..masters)
        .map(|i| MasterRun {
            jobs: served[i],
            enqueue_us_per_job: per_job(enqueued[i] - before[i], served[i]),
            drain_us_per_job: per_job(drained[i] - enqueued[i], served[i]),
        })
        .collect();
    Ok((per_master, rate))
}

async fn node_conn(cluster: &TestCluster, i: usize) -> Result<redis::aio::MultiplexedConnection> {
    Ok(cluster
        .node(i)
        .client()
        .get_multiplexed_async_connection()
        .await?)
}

async fn info(cluster: &TestCluster, i: usize, section: &str) -> Result<String> {
    let mut conn = node_conn(cluster, i).await?;
    Ok(redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await?)
}

/// Each master's main-thread CPU seconds so far.
async fn cpu(cluster: &TestCluster) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..cluster.urls().len() {
        let text = info(cluster, i, "cpu").await?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        out.push(get("used_cpu_user_main_thread") + get("used_cpu_sys_main_thread"));
    }
    Ok(out)
}
