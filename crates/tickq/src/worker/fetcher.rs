//! Fetcher: fills free job slots with claimed jobs, and sleeps when there is nothing to claim.
//!
//! Sleeping costs Redis nothing: the fetcher waits on a local timer set to the earliest due
//! time that the claim script reported (a Redis-clock duration, so node clock skew does not
//! matter), and on a wake-up from the per-queue [`wait_for_wake`] task, which blocks on the
//! queue's wake stream. Enqueues, retries and freed slots append to it; a lost wake-up costs
//! latency (until the timer), never a job.
//!
//! The local timer is what makes delayed jobs start within milliseconds: Redis 7.0 rounds
//! blocking-command timeouts to its 100 ms cron tick, so the stream's block cannot be used as
//! the due-time clock.

use super::acker::Ack;
use super::{Shared, processor};
use crate::broker::keys::QueueKeys;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) async fn run(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    jobs: &TaskTracker,
    acks: tokio::sync::mpsc::UnboundedSender<Ack>,
) {
    let wake = shared.wake.clone();
    let (idle_tx, idle_rx) = watch::channel(false);
    let mut waiters = Vec::new();
    for (keys, _) in &shared.config.queues {
        waiters.push(tokio::spawn(wait_for_wake(
            shared.clone(),
            keys.clone(),
            idle_rx.clone(),
            wake.clone(),
            shutdown.clone(),
        )));
    }

    let mut failures = 0u32;
    loop {
        let first = tokio::select! {
            permit = shared.slots.clone().acquire_owned() => permit.expect("slots never close"),
            _ = shutdown.cancelled() => break,
        };
        let mut permits = vec![first];
        take_free_slots(&shared, &mut permits);
        if permits.len() < shared.config.claim_batch.min(shared.config.concurrency) {
            // Jobs that finish together give their slots back a moment apart, each from its
            // own task. One yield lets those already done hand theirs in, so one claim takes
            // them all: a claim call's fixed cost (promotion, limits, wake stream, events:
            // about 20 µs of Redis time) is most of a small claim's. When every slot was free
            // this costs nothing: the batch is full already.
            tokio::task::yield_now().await;
            take_free_slots(&shared, &mut permits);
        }

        let mut claimed = 0usize;
        let mut next_wake: Option<Duration> = None;
        let mut errored = false;
        for keys in weighted_order(&shared.config.queues) {
            if permits.is_empty() {
                break;
            }
            let lease_from = std::time::Instant::now();
            let claim = shared.broker.claim(
                &keys,
                &shared.id,
                shared.config.lease,
                permits.len(),
                shared.config.spread_grace,
            );
            match claim.await {
                Ok(batch) => {
                    if batch.next_due_ms >= 0 {
                        let wait =
                            Duration::from_millis((batch.next_due_ms - batch.now_ms).max(0) as u64);
                        next_wake = Some(next_wake.map_or(wait, |w| w.min(wait)));
                    }
                    let lease_until = lease_from + shared.config.lease;
                    let metrics = shared.metrics(&keys.name);
                    for job in batch.jobs {
                        if let Some(m) = metrics {
                            m.claimed(job.due_ms, batch.now_ms);
                        }
                        let permit = permits.pop().expect("claimed no more than free slots");
                        claimed += 1;
                        let running = processor::register(&shared, &keys, &job, lease_until);
                        jobs.spawn(processor::run(
                            shared.clone(),
                            keys.clone(),
                            job,
                            running,
                            permit,
                            acks.clone(),
                        ));
                    }
                }
                Err(e) => {
                    errored = true;
                    tracing::warn!(queue = %keys.name, error = %e, "claim failed");
                }
            }
        }
        drop(permits);

        if errored && claimed == 0 {
            // Redis is unreachable or failing: back off (up to 2 s), still listening for
            // shutdown.
            failures = (failures + 1).min(5);
            let backoff = Duration::from_millis(50 << failures).min(Duration::from_secs(2));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        failures = 0;
        if claimed > 0 {
            continue;
        }

        let sleep = next_wake
            .unwrap_or(shared.config.max_idle)
            .min(shared.config.max_idle);
        if sleep.is_zero() {
            // Work is listed but none could be leased (ids whose jobs vanished): yield once
            // rather than spin.
            tokio::task::yield_now().await;
            continue;
        }
        idle_tx.send_replace(true);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.cancelled() => {
                idle_tx.send_replace(false);
                break;
            }
        }
        idle_tx.send_replace(false);
    }
    for waiter in waiters {
        waiter.abort();
        let _ = waiter.await;
    }
}

/// Add free slots to `permits`, up to the claim batch.
fn take_free_slots(shared: &Shared, permits: &mut Vec<tokio::sync::OwnedSemaphorePermit>) {
    while permits.len() < shared.config.claim_batch {
        match shared.slots.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
}

/// Queues in the order to claim from this round: each drawn with probability proportional to
/// its weight among those not yet drawn, so no queue starves and heavier ones come first more
/// often.
fn weighted_order(queues: &[(Arc<QueueKeys>, u32)]) -> Vec<Arc<QueueKeys>> {
    if queues.len() == 1 {
        return vec![queues[0].0.clone()];
    }
    let mut left: Vec<(Arc<QueueKeys>, u32)> = queues.to_vec();
    let mut order = Vec::with_capacity(left.len());
    let mut rng = rand::rng();
    while !left.is_empty() {
        let total: u32 = left.iter().map(|(_, w)| *w).sum();
        let mut pick = rng.random_range(0..total);
        let mut index = 0;
        for (i, (_, w)) in left.iter().enumerate() {
            if pick < *w {
                index = i;
                break;
            }
            pick -= *w;
        }
        order.push(left.swap_remove(index).0);
    }
    order
}

/// Blocks on one queue's wake stream while the fetcher is idle and wakes it when an entry
/// arrives.
///
/// One connection per queue, because a multi-key blocking read across queues would span
/// Cluster slots. The read starts after the last entry this worker acted on, so an entry added
/// while the fetcher was busy (or between its last claim and this read) is seen at once. An
/// entry that arrives while the fetcher is busy is not acted on here (the fetcher claims anyway
/// and reads it again when idle); the stream delivers every entry to every reader, so nothing
/// is taken from other workers.
async fn wait_for_wake(
    shared: Arc<Shared>,
    keys: Arc<QueueKeys>,
    mut idle: watch::Receiver<bool>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let block = shared.config.block;
    let mut conn = None;
    // "0-0" at start: an entry already there costs one claim, and a wake-up is never missed.
    let mut last_seen = "0-0".to_owned();
    loop {
        tokio::select! {
            r = idle.wait_for(|idle| *idle) => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        if conn.is_none() {
            match shared.broker.blocking_connection(block).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "wake-stream connection failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let read = tokio::select! {
            r = shared.broker.wait_for_wake(c, &keys, &last_seen, block) => r,
            _ = shutdown.cancelled() => return,
        };
        match read {
            Ok(Some(newest)) => {
                if *idle.borrow() {
                    last_seen = newest;
                    wake.notify_one();
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "wake-stream read failed; reconnecting");
                conn = None;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}
