//! Acker: turns the stream of completed jobs into few ack calls.
//!
//! It takes whatever has queued up since its last call (up to a cap) and acks it in one
//! script call per queue, so batching grows with load and costs no latency when idle.
//!
//! An ack that fails (Redis unreachable, or too few replicas confirmed it with
//! [`ack_replicas`](super::WorkerBuilder::ack_replicas)) is kept and sent again with the next
//! batch, with backoff, for up to one lease from its first try: acks are idempotent (one
//! already applied with the same fence answers `again`). A failing ack must not hold back the
//! ones behind it: they would wait past their own leases and run again.

use super::Shared;
use crate::Result;
use crate::broker::conn::Conn;
use crate::broker::keys::QueueKeys;
use crate::broker::{AckOutcome, Broker, Retention};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

const MAX_BATCH: usize = 1000;
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A completed job on its way to the acker: (queue keys, id, fence, result).
pub(crate) type Ack = (Arc<QueueKeys>, String, u64, String);

/// An ack not yet applied, and when to stop trying (one lease after its first try).
struct Pending {
    ack: Ack,
    give_up: Instant,
}

/// Runs until every sender is gone (the fetcher and all processors have finished) and every
/// ack kept for another try is applied or given up.
pub(crate) async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<Ack>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    let mut retry: Vec<Pending> = Vec::new();
    let mut delay = RETRY_FIRST;
    let mut open = true;
    // WAIT counts the writes of the connection it is sent on, and blocks it: acks that wait
    // for replicas get a connection of their own, opened on first use.
    let mut replicated: Option<Conn> = None;
    loop {
        if retry.is_empty() {
            if !open || rx.recv_many(&mut buf, MAX_BATCH).await == 0 {
                return;
            }
            // Jobs that finish together report a moment apart, each from its own task: one
            // yield lets those already done send theirs, so one ack call takes them all (an
            // ack call's fixed cost, stats, history and events, is most of a small one's).
            tokio::task::yield_now().await;
            while buf.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(ack) => buf.push(ack),
                    Err(_) => break,
                }
            }
        } else {
            // Acks to try again: wait out the backoff, taking in new ones meanwhile.
            let until = Instant::now() + delay;
            while open && buf.len() < MAX_BATCH {
                match tokio::time::timeout_at(until, rx.recv_many(&mut buf, MAX_BATCH)).await {
                    Ok(0) => open = false,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if !open {
                tokio::time::sleep_until(until).await;
            }
        }
        let give_up = Instant::now() + shared.config.lease;
        let batch: Vec<Pending> = retry
            .drain(..)
            .chain(buf.drain(..).map(|ack| Pending { ack, give_up }))
            .collect();
        let mut by_queue: HashMap<String, Vec<Pending>> = HashMap::new();
        for p in batch {
            by_queue.entry(p.ack.0.name.clone()).or_default().push(p);
        }
        for (_, jobs) in by_queue {
            if let Err(failed) = ack(&shared, jobs, &mut replicated).await {
                retry.extend(failed);
            }
        }
        delay = if retry.is_empty() {
            RETRY_FIRST
        } else {
            (delay * 2).min(RETRY_MAX)
        };
    }
}

/// Ack one queue's batch; on failure answers the acks still worth another try.
async fn ack(
    shared: &Shared,
    jobs: Vec<Pending>,
    replicated: &mut Option<Conn>,
) -> Result<(), Vec<Pending>> {
    let keys = jobs[0].ack.0.clone();
    let list: Vec<(String, u64, String)> = jobs
        .iter()
        .map(|p| (p.ack.1.clone(), p.ack.2, p.ack.3.clone()))
        .collect();
    let result = send(
        &shared.broker,
        &keys,
        &shared.config.retention,
        &list,
        shared.config.ack_replicas,
        replicated,
    )
    .await;
    match result {
        Ok(outcome) => {
            // `again`: applied by an earlier try of ours whose answer was an error.
            let done = outcome.acked + outcome.again;
            shared.counters.completed.fetch_add(done, Ordering::Relaxed);
            // Only what Redis applied counts as completed; stale acks are not outcomes.
            if let Some(m) = shared.metrics(&keys.name) {
                m.completed.increment(done);
            }
            if !outcome.stale.is_empty() {
                shared
                    .counters
                    .stale
                    .fetch_add(outcome.stale.len() as u64, Ordering::Relaxed);
                tracing::warn!(queue = %keys.name, jobs = ?outcome.stale, "late ack not applied: these jobs' leases were lost and they belong to another holder now");
            }
            super::relay::after_step_end(shared, &keys, list.iter().map(|(id, _, _)| id.as_str()))
                .await;
            Ok(())
        }
        Err(e) => {
            let now = Instant::now();
            let (keep, drop): (Vec<Pending>, Vec<Pending>) =
                jobs.into_iter().partition(|p| now < p.give_up);
            if drop.is_empty() {
                tracing::debug!(queue = %keys.name, jobs = keep.len(), error = %e, "ack failed; retrying");
            } else {
                tracing::warn!(queue = %keys.name, jobs = drop.len(), error = %e, "could not ack; these jobs will run again after their leases expire");
            }
            Err(keep)
        }
    }
}

async fn send(
    broker: &Broker,
    keys: &QueueKeys,
    retention: &Retention,
    jobs: &[(String, u64, String)],
    replicas: Option<(u32, Duration)>,
    replicated: &mut Option<Conn>,
) -> Result<AckOutcome> {
    let Some((replicas, timeout)) = replicas else {
        return broker.ack(keys, retention, jobs).await;
    };
    let conn = match replicated {
        Some(conn) => conn,
        None => replicated.insert(broker.blocking_connection(timeout).await?),
    };
    broker
        .ack_replicated(conn, keys, retention, jobs, replicas, timeout)
        .await
}
