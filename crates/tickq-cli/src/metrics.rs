//! Prometheus metrics of a node: the library's job metrics (recorded through the `metrics`
//! facade into the recorder installed here) plus queue sizes read from Redis at scrape time.

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Duration;
use tickq::{Inspector, JobState};

/// Buckets of the duration and latency histograms, in seconds: 1 ms to 60 s, about ×2.5 apart.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes, so memory stays
/// bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What `GET /metrics` renders.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    inspector: Inspector,
}

/// Install the process-wide recorder. Call before the worker runs jobs: the library's
/// handles made earlier would stay no-ops.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for name in ["tickq_job_duration_seconds", "tickq_queue_latency_seconds"] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), BUCKETS)
            .context("configuring histogram buckets")?;
    }
    let handle = builder
        .install_recorder()
        .context("installing the metrics recorder")?;
    metrics::describe_counter!(
        "tickq_jobs_total",
        "Jobs that ended an attempt, by outcome."
    );
    metrics::describe_histogram!(
        "tickq_job_duration_seconds",
        metrics::Unit::Seconds,
        "Handler run time of one attempt."
    );
    metrics::describe_histogram!(
        "tickq_queue_latency_seconds",
        metrics::Unit::Seconds,
        "Claim time minus due time."
    );
    metrics::describe_gauge!(
        "tickq_queue_size",
        "Jobs in each state, read from Redis at scrape time."
    );
    metrics::describe_gauge!("tickq_up", "1 while this node runs.");
    metrics::gauge!("tickq_up").set(1.0);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

impl Metrics {
    pub fn new(handle: PrometheusHandle, inspector: Inspector) -> Metrics {
        Metrics { handle, inspector }
    }

    /// The text exposition (format 0.0.4), with queue sizes fresh from Redis.
    pub async fn render(&self) -> String {
        match self.inspector.stats().await {
            Ok(stats) => {
                for counts in stats.queues {
                    for state in JobState::ALL {
                        let n = counts.states.get(&state).copied().unwrap_or(0);
                        metrics::gauge!(
                            "tickq_queue_size",
                            "queue" => counts.queue.clone(),
                            "state" => state.as_str()
                        )
                        .set(n as f64);
                    }
                }
            }
            // The job metrics are still worth serving; the sizes keep their last values.
            Err(e) => tracing::warn!(error = %e, "metrics: could not read queue sizes from Redis"),
        }
        self.handle.render()
    }
}
