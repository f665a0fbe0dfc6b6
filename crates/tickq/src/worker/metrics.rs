//! Metrics: handles into the `metrics` facade, looked up once per queue.
//!
//! Registering a metric with labels hashes and allocates; at tens of thousands of jobs a
//! second that is worth avoiding, so each configured queue gets its handles when the worker
//! starts and the hot path only bumps atomics. With no recorder installed the handles are
//! no-ops.

use metrics::{Counter, Histogram, counter, histogram};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Counts jobs by queue and outcome.
pub(crate) const JOBS_TOTAL: &str = "tickq_jobs_total";
/// Handler run time of one attempt.
pub(crate) const JOB_DURATION: &str = "tickq_job_duration_seconds";
/// Claim time minus due time.
pub(crate) const QUEUE_LATENCY: &str = "tickq_queue_latency_seconds";

/// One queue's handles.
pub(crate) struct QueueMetrics {
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) dead: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) abandoned: Counter,
    pub(crate) handed_back: Counter,
    pub(crate) duration: Histogram,
    pub(crate) latency: Histogram,
}

impl QueueMetrics {
    fn new(queue: &str) -> QueueMetrics {
        let queue: Arc<str> = Arc::from(queue);
        let outcome = |outcome: &'static str| counter!(JOBS_TOTAL, "queue" => queue.clone(), "outcome" => outcome);
        QueueMetrics {
            completed: outcome("completed"),
            failed: outcome("failed"),
            dead: outcome("dead"),
            cancelled: outcome("cancelled"),
            abandoned: outcome("abandoned"),
            handed_back: outcome("handed_back"),
            duration: histogram!(JOB_DURATION, "queue" => queue.clone()),
            latency: histogram!(QUEUE_LATENCY, "queue" => queue.clone()),
        }
    }

    /// Record how long after its due time (both Redis ms) a job was claimed.
    pub(crate) fn claimed(&self, due_ms: i64, now_ms: i64) {
        // 0 means the due time is unknown (a job written before it was stored).
        if due_ms > 0 {
            let late = (now_ms - due_ms).max(0) as u64;
            self.latency
                .record(Duration::from_millis(late).as_secs_f64());
        }
    }
}

/// The handles of every queue a worker claims from.
pub(crate) struct Metrics {
    queues: HashMap<String, QueueMetrics>,
}

impl Metrics {
    pub(crate) fn new<'a>(queues: impl IntoIterator<Item = &'a str>) -> Metrics {
        Metrics {
            queues: queues
                .into_iter()
                // A shard's jobs count under its queue's name (shard.rs).
                .map(|q| (q.to_owned(), QueueMetrics::new(crate::shard::logical(q))))
                .collect(),
        }
    }

    /// The queue's handles; None only for a queue the worker was not configured with.
    pub(crate) fn queue(&self, queue: &str) -> Option<&QueueMetrics> {
        self.queues.get(queue)
    }
}
