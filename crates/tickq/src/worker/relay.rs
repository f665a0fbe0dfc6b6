//! Relay: hands the ends of workflow steps to the other queues of their workflows
//! (docs/workflows.md, "Steps in other queues").
//!
//! The script that ends a step settles its children in its own queue at once and writes an
//! outbox entry in its own slot for each other queue to tell; the relay applies those entries
//! in their targets (`flow_settle`, idempotent) and then removes them. Two paths call it: the
//! acker and the failure report right after they ended a step (the fast path: a child in
//! another queue starts within a round trip or two), and this periodic task for every queue
//! of the worker, at the recoverer's pace ([`WorkerBuilder::recover_interval`], 5 s by
//! default: an outbox read per queue and period is all it costs an idle worker): the crash
//! path, for an end whose fast path never ran (the process died between the two calls, or a
//! step ended by the recoverer or by hand).
//!
//! [`WorkerBuilder::recover_interval`]: super::WorkerBuilder::recover_interval

use super::Shared;
use crate::broker::keys::QueueKeys;
use crate::flow::FLOW_JOB_PREFIX;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.recover_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
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
