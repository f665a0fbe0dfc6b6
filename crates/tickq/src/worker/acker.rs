//! Acker: turns the stream of completed jobs into few ack calls.
//!
//! It takes whatever has queued up since its last call (up to a cap) and acks it in one
//! script call per queue, so batching grows with load and costs no latency when idle.

use super::Shared;
use crate::broker::keys::QueueKeys;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

const MAX_BATCH: usize = 1000;

/// A completed job on its way to the acker: (queue keys, id, fence, result).
pub(crate) type Ack = (Arc<QueueKeys>, String, u64, String);

/// One queue's share of a batch: its keys and (id, fence, result) per job.
type QueueBatch = (Arc<QueueKeys>, Vec<(String, u64, String)>);

/// Runs until every sender is gone (the fetcher and all processors have finished).
pub(crate) async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<Ack>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        let mut by_queue: HashMap<String, QueueBatch> = HashMap::new();
        for (keys, id, fence, result) in buf.drain(..) {
            by_queue
                .entry(keys.name.clone())
                .or_insert_with(|| (keys.clone(), Vec::new()))
                .1
                .push((id, fence, result));
        }
        for (keys, jobs) in by_queue.into_values() {
            ack(&shared, &keys, &jobs).await;
        }
    }
}

/// Ack one batch, retrying while Redis is unreachable for up to one lease length (the call is
/// idempotent); past that the leases expire and the jobs run again (at-least-once).
async fn ack(shared: &Shared, keys: &QueueKeys, jobs: &[(String, u64, String)]) {
    let give_up = Instant::now() + shared.config.lease;
    let mut delay = Duration::from_millis(50);
    loop {
        match shared
            .broker
            .ack(keys, &shared.config.retention, jobs)
            .await
        {
            Ok(outcome) => {
                shared
                    .counters
                    .completed
                    .fetch_add(outcome.acked, Ordering::Relaxed);
                // Only what Redis applied counts as completed; stale acks are not outcomes.
                if let Some(m) = shared.metrics(&keys.name) {
                    m.completed.increment(outcome.acked);
                }
                if !outcome.stale.is_empty() {
                    shared
                        .counters
                        .stale
                        .fetch_add(outcome.stale.len() as u64, Ordering::Relaxed);
                    tracing::warn!(queue = %keys.name, jobs = ?outcome.stale, "late ack not applied: these jobs' leases were lost and they belong to another holder now");
                }
                return;
            }
            Err(e) if Instant::now() < give_up => {
                tracing::debug!(error = %e, "ack failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(queue = %keys.name, jobs = jobs.len(), error = %e, "could not ack; these jobs will run again after their leases expire");
                return;
            }
        }
    }
}
