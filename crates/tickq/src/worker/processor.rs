//! Processor: runs one claimed job and reports how it ended.
//!
//! A handler's panic, error or timeout fails the attempt, never the worker. A stop (lease
//! lost, cancel, forced shutdown) drops the handler's future at its next await point.

use super::acker::Ack;
use super::relay;
use super::{Running, Shared, StopReason};
use crate::broker::message::Envelope;
use crate::broker::{Claimed, FailMode, FailOutcome, keys::QueueKeys};
use crate::handler::{FailAction, Job};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

/// Record a claimed job as running, before its task starts, so the heartbeat renews it from
/// the first moment.
pub(crate) fn register(
    shared: &Shared,
    keys: &QueueKeys,
    job: &Claimed,
    lease_until: Instant,
) -> Arc<Running> {
    let running = Arc::new(Running {
        fence: job.fence,
        stop: CancellationToken::new(),
        reason: AtomicU8::new(StopReason::None as u8),
        lease_until: std::sync::Mutex::new(lease_until),
    });
    let key = (Arc::from(keys.name.as_str()), job.id.clone());
    shared
        .running
        .lock()
        .expect("running map poisoned")
        .insert(key, running.clone());
    running
}

enum Outcome {
    Completed(String),
    Failed(FailAction, String),
    Stopped(StopReason),
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    keys: Arc<QueueKeys>,
    claimed: Claimed,
    running: Arc<Running>,
    permit: OwnedSemaphorePermit,
    acks: tokio::sync::mpsc::UnboundedSender<Ack>,
) {
    let outcome = execute(&shared, &keys.name, &claimed, &running).await;
    // The job leaves the running map before its outcome is reported, so the heartbeat stops
    // renewing it; its lease still has at least two thirds of its length left.
    shared
        .running
        .lock()
        .expect("running map poisoned")
        .remove(&(Arc::from(keys.name.as_str()), claimed.id.clone()));
    drop(permit);

    let Claimed {
        id, fence, attempt, ..
    } = claimed;
    match outcome {
        Outcome::Completed(result) => {
            // The acker batches; if the worker is past shutdown and the acker is gone the lease
            // simply expires and the job runs again (at-least-once).
            let _ = acks.send((keys, id, fence, result));
        }
        Outcome::Failed(action, message) => {
            let mode = match action {
                FailAction::Retry => FailMode::Retry(shared.config.retry.backoff(attempt)),
                FailAction::RetryAfter(delay) => FailMode::Retry(delay),
                FailAction::Kill => FailMode::Kill,
            };
            report_failure(&shared, &keys, &id, fence, &message, mode).await;
        }
        Outcome::Stopped(StopReason::Cancelled) => {
            report_failure(&shared, &keys, &id, fence, "cancelled", FailMode::Cancel).await;
        }
        Outcome::Stopped(StopReason::Shutdown) => {
            match shared.broker.requeue(&keys, &[(id.clone(), fence)]).await {
                Ok(n) => {
                    shared.counters.handed_back.fetch_add(n, Ordering::Relaxed);
                    if let Some(m) = shared.metrics(&keys.name) {
                        m.handed_back.increment(n);
                    }
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "could not hand the job back; it runs again after its lease expires")
                }
            }
        }
        Outcome::Stopped(_) => {
            shared.counters.abandoned.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = shared.metrics(&keys.name) {
                m.abandoned.increment(1);
            }
            tracing::warn!(queue = %keys.name, job = %id, fence, "lease lost; job abandoned");
        }
    }
}

async fn execute(shared: &Shared, queue: &str, claimed: &Claimed, running: &Running) -> Outcome {
    let envelope = match Envelope::decode(&claimed.data, &claimed.id, queue) {
        Ok(e) => e,
        Err(e) => return Outcome::Failed(FailAction::Kill, format!("corrupt job: {e}")),
    };
    let Some(handler) = shared.handlers.get(&envelope.kind).cloned() else {
        return Outcome::Failed(
            FailAction::Retry,
            format!(
                "no handler for job kind {:?} on worker {}",
                envelope.kind, shared.id
            ),
        );
    };
    let timeout = envelope
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(shared.config.job_timeout);
    let job = Job {
        contents: Arc::new(crate::handler::Contents {
            id: envelope.id,
            queue: envelope.queue,
            kind: envelope.kind,
            payload: envelope.payload,
            meta: envelope.meta,
        }),
        attempt: claimed.attempt,
        fence: claimed.fence,
        due_at: Some(claimed.due_ms)
            .filter(|ms| *ms > 0)
            .and_then(crate::job::ms_to_timestamp),
        stop: running.stop.clone(),
        reporter: Some(crate::handler::Reporter {
            broker: shared.broker.clone(),
            keys: shared.keys(queue),
        }),
    };
    let started = Instant::now();
    let mut run = AssertUnwindSafe(handler.call(job)).catch_unwind();
    let outcome = tokio::select! {
        result = &mut run => match result {
            Ok(Ok(result)) => Outcome::Completed(result.unwrap_or_default()),
            // A handler that answers an error at once when stopped (the exec kind, once its
            // program is gone) can end in the poll where the stop is seen, and `select!`
            // may look at it first: its answer is the stop's doing, so the stop decides, as
            // in the branch below. A result still counts: the work was done.
            Ok(Err(_)) if running.stop.is_cancelled() => Outcome::Stopped(running.reason()),
            Ok(Err(e)) => Outcome::Failed(e.action, e.message),
            Err(panic) => Outcome::Failed(FailAction::Retry, format!("handler panicked: {}", panic_message(&panic))),
        },
        _ = tokio::time::sleep(timeout) => {
            // Like any stop: the handler sees `Job::stopped` and gets the grace to clean up.
            running.stop(StopReason::TimedOut);
            let _ = tokio::time::timeout(shared.config.stop_grace, run).await;
            match running.reason() {
                StopReason::TimedOut => {
                    Outcome::Failed(FailAction::Retry, format!("timed out after {timeout:?}"))
                }
                other => Outcome::Stopped(other),
            }
        }
        _ = running.stop.cancelled() => {
            // The handler saw the same signal through `Job::stopped`; let it clean up (stop
            // child processes, roll back) for a moment before its future is dropped. Its
            // answer no longer counts: the job is lost, cancelled or handed back.
            let _ = tokio::time::timeout(shared.config.stop_grace, run).await;
            Outcome::Stopped(running.reason())
        }
    };
    if let Some(m) = shared.metrics(queue) {
        m.duration.record(started.elapsed().as_secs_f64());
    }
    outcome
}

/// Report a failed attempt, retrying while Redis is unreachable: the call is idempotent (a
/// repeat answers "stale"), and giving up only means the lease expires and the job runs again.
async fn report_failure(
    shared: &Shared,
    keys: &QueueKeys,
    id: &str,
    fence: u64,
    message: &str,
    mode: FailMode,
) {
    let give_up = Instant::now() + shared.config.lease;
    let mut delay = Duration::from_millis(50);
    loop {
        match shared
            .broker
            .fail(keys, &shared.config.retention, id, fence, message, mode)
            .await
        {
            Ok(FailOutcome::Stale) => {
                shared.counters.stale.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(queue = %keys.name, job = %id, fence, "failure not recorded: the job's lease was lost (reported, not applied)");
                return;
            }
            Ok(outcome) => {
                if outcome != FailOutcome::Cancelled {
                    shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(m) = shared.metrics(&keys.name) {
                    match outcome {
                        FailOutcome::Retry => m.failed.increment(1),
                        FailOutcome::Dead => m.dead.increment(1),
                        FailOutcome::Cancelled => m.cancelled.increment(1),
                        FailOutcome::Stale => {}
                    }
                }
                tracing::debug!(queue = %keys.name, job = %id, ?outcome, error = message, "attempt failed");
                if outcome != FailOutcome::Retry {
                    relay::after_step_end(shared, keys, std::iter::once(id)).await;
                }
                return;
            }
            Err(e) if Instant::now() < give_up => {
                tracing::debug!(job = %id, error = %e, "reporting a failure failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "could not report a failure; the job runs again after its lease expires");
                return;
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
