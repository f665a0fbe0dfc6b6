//! Heartbeat: renews the leases of running jobs every third of the lease, and abandons the
//! jobs whose lease it could not renew before the local deadline.
//!
//! The local deadline is counted from when the claim or renewal was *sent*, so it never falls
//! after the deadline Redis set. Abandoning at that moment is what makes a stalled or cut-off
//! worker stop before the recoverer hands its job to someone else.

use super::{Running, Shared, StopReason};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.lease / 3;
    let mut next_renewal = Instant::now() + every;
    loop {
        let earliest = shared
            .running_snapshot()
            .iter()
            .map(|(_, r)| *r.lease_until.lock().expect("lease poisoned"))
            .min();
        let wake = earliest.map_or(next_renewal, |e| e.min(next_renewal));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.cancelled() => return,
        }
        if Instant::now() >= next_renewal {
            next_renewal = Instant::now() + every;
        }
        renew_all(&shared).await;
        abandon_expired(&shared);
    }
}

async fn renew_all(shared: &Shared) {
    let mut by_queue: HashMap<Arc<str>, Vec<(String, Arc<Running>)>> = HashMap::new();
    for ((queue, id), running) in shared.running_snapshot() {
        by_queue.entry(queue).or_default().push((id, running));
    }
    for (queue, jobs) in by_queue {
        let keys = shared.keys(&queue);
        let ids: Vec<(String, u64)> = jobs.iter().map(|(id, r)| (id.clone(), r.fence)).collect();
        // Never wait on Redis past the earliest local deadline: a stalled Redis must not keep
        // this worker from abandoning in time.
        let earliest = jobs
            .iter()
            .map(|(_, r)| *r.lease_until.lock().expect("lease poisoned"))
            .min();
        let limit = earliest
            .map(|e| e.saturating_duration_since(Instant::now()))
            .unwrap_or(shared.config.lease);
        let sent = Instant::now();
        match tokio::time::timeout(limit, shared.broker.renew(&keys, shared.config.lease, &ids))
            .await
        {
            Ok(Ok(renewed)) => {
                let lost: std::collections::HashSet<&str> =
                    renewed.lost.iter().map(String::as_str).collect();
                let cancel: std::collections::HashSet<&str> = renewed
                    .cancel_requested
                    .iter()
                    .map(String::as_str)
                    .collect();
                for (id, running) in &jobs {
                    if lost.contains(id.as_str()) {
                        running.stop(StopReason::LeaseLost);
                    } else {
                        *running.lease_until.lock().expect("lease poisoned") =
                            sent + shared.config.lease;
                        if cancel.contains(id.as_str()) {
                            running.stop(StopReason::Cancelled);
                        }
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(queue = %queue, error = %e, "lease renewal failed"),
            Err(_) => {
                tracing::warn!(queue = %queue, "lease renewal got no answer before the lease deadline")
            }
        }
    }
}

fn abandon_expired(shared: &Shared) {
    let now = Instant::now();
    for (_, running) in shared.running_snapshot() {
        if *running.lease_until.lock().expect("lease poisoned") <= now {
            running.stop(StopReason::LeaseLost);
        }
    }
}
