//! Relay: hands the ends of workflow steps to the other queues of their workflows
//! (docs/workflows.md, "Steps in other queues").
//!
//! The script that ends a step settles its children in its own queue at once and writes an
//! outbox entry in its own slot for each other queue to tell; the relay applies those entries
//! in their targets (`flow_settle`, idempotent) and then removes them. Two paths call it: the
//! acker and the failure report right after they ended a step (the fast path: a child in
//! another queue starts within a round trip or two), and this periodic task for every queue
//! of the worker (the crash path: an end whose fast path never ran, e.g. the process died
//! between the two calls, or a step ended by the recoverer or by hand, is handed on within
//! [`RELAY_EVERY`]).

use super::Shared;
use crate::broker::keys::QueueKeys;
use crate::flow::FLOW_JOB_PREFIX;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each queue's outbox is drained: the longest a crash delays a release.
pub(crate) const RELAY_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELAY_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        for (keys, _) in &shared.config.queues {
            relay(&shared, keys).await;
        }
    }
}

/// After jobs of `keys`' queue ended: relay its outbox when one of them was a workflow step.
pub(crate) async fn after_step_end<'a>(
    shared: &Shared,
    keys: &QueueKeys,
    mut ids: impl Iterator<Item = &'a str>,
) {
    if ids.any(|id| id.starts_with(FLOW_JOB_PREFIX)) {
        relay(shared, keys).await;
    }
}

async fn relay(shared: &Shared, keys: &QueueKeys) {
    if let Err(e) = shared.broker.relay_flows(keys).await {
        tracing::debug!(queue = %keys.name, error = %e, "workflow relay failed; trying again later");
    }
}
