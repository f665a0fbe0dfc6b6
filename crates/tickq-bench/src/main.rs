//! `tickq-bench`: tickq's throughput, latency and idle-cost figures, measured the way
//! `shared/bench-peers` measures BullMQ, Celery, RQ, arq and Dramatiq, so the ratios mean
//! something. See `docs/benchmarks.md`.

mod cluster;
mod report;
mod sys;
mod target;
mod workloads;

use anyhow::Result;
use clap::Parser;
use report::{Report, RunRecord};
use std::time::Duration;
use target::Target;
use workloads::{Params, Workload};

/// Measure tickq against a private redis-server (or --redis). Every run starts with FLUSHALL.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Redis to measure against. Its data is WIPED (FLUSHALL) before every run.
    /// Default: a private redis-server on a free port (--save "" --appendonly no).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Jobs per run of the enqueue and process workloads.
    #[arg(long, default_value_t = 20_000)]
    n: u64,
    /// Runs of each workload; the table shows their median, min and max.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Print one JSON line per run and per summarised measurement on stdout (the human table
    /// then goes to stderr).
    #[arg(long)]
    json: bool,
    /// After each enqueue or process run, print (on stderr) the Redis commands it caused, per
    /// job: calls and µs of Redis time, from `INFO commandstats`.
    #[arg(long)]
    commandstats: bool,
    /// A run that has not finished after this many seconds fails.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Length of the `latency` workload's steady enqueue stream, in seconds.
    #[arg(long, default_value_t = 3.0)]
    latency_secs: f64,
    /// Enqueues per second in the `latency` workload.
    #[arg(long, default_value_t = 1000)]
    latency_rate: u32,
    /// Length of the `idle` workload's sampling window, in seconds.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Queue depths of the `scale` workload (waiting jobs, comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [20_000u64, 100_000, 300_000, 1_000_000])]
    scale_sizes: Vec<u64>,
    /// The tokio runtime the bench (producer and in-process worker) runs on: `multi-thread`
    /// is what `#[tokio::main]` gives; `current-thread` runs everything on one thread.
    #[arg(long, value_enum, default_value_t = Runtime::MultiThread)]
    runtime: Runtime,
    /// Run the `sharded` workload instead of the others: one queue of --shards shards on a
    /// local Redis Cluster of N masters (started through the testkit), printing each master's
    /// Redis CPU per job it served, so scaling reads from one run.
    #[arg(long, value_name = "N")]
    cluster: Option<usize>,
    /// Shards of the `sharded` workload's queue. Default: one per master (--cluster N).
    #[arg(long, value_name = "K", requires = "cluster")]
    shards: Option<u32>,
    /// Workloads to run, in this order. Default: all of them but `scale` and `layout-floor`.
    #[arg(value_enum)]
    workloads: Vec<Workload>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    MultiThread,
    CurrentThread,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match args.runtime {
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .expect("building the tokio runtime");
    match runtime.block_on(bench(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickq-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> Result<()> {
    anyhow::ensure!(args.n >= 2, "--n must be at least 2");
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    anyhow::ensure!(
        args.latency_rate >= 1 && args.latency_secs > 0.0,
        "--latency-rate and --latency-secs must be positive"
    );
    if let Some(masters) = args.cluster {
        anyhow::ensure!(
            args.workloads.is_empty() && args.redis.is_none(),
            "--cluster runs the sharded workload on its own cluster: give no workloads and no --redis"
        );
        let shards = args.shards.unwrap_or(masters as u32);
        let timeout = Duration::from_secs(args.timeout_secs);
        return cluster::run(masters, shards, args.n, args.runs, timeout).await;
    }
    let workloads = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    let params = Params {
        n: args.n,
        timeout: Duration::from_secs(args.timeout_secs),
        latency_secs: args.latency_secs,
        latency_rate: args.latency_rate,
        idle_window: Duration::from_secs(args.idle_secs),
        scale_sizes: args.scale_sizes.clone(),
    };

    let target = Target::open(args.redis.as_deref()).await?;
    let runtime = match args.runtime {
        Runtime::MultiThread => "multi-thread (tokio default)",
        Runtime::CurrentThread => "current-thread",
    };
    let mut report = Report::new(
        args.json,
        target.describe().await?,
        &params,
        args.runs,
        runtime,
    );
    report.commandstats = args.commandstats;
    report.header();

    // Rounds are interleaved (run 1 of every workload, then run 2, ...) like bench-peers, so
    // slow drifts of a shared machine spread over all workloads.
    for run in 1..=args.runs {
        for &workload in &workloads {
            target.flushall().await?;
            sys::reset_peak_rss();
            let outcome = tokio::time::timeout(
                params.timeout + Duration::from_secs(30),
                workloads::run(workload, &target, &params),
            )
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "did not finish within {} s (outer guard)",
                    params.timeout.as_secs() + 30
                ))
            });
            report.record(RunRecord::new(
                workload,
                run,
                outcome,
                sys::peak_rss_bytes(),
            ));
        }
    }
    target.flushall().await?;
    let failed = report.finish();
    if failed > 0 {
        anyhow::bail!("{failed} run(s) failed");
    }
    Ok(())
}
