//! Registrar: keeps this worker listed in the node registry (what it is, what it runs now), so
//! `tickq nodes` and the dashboard can show it. A beat every `node_heartbeat` keeps the record
//! for three beats: a node killed or cut off from Redis leaves the list when that runs out; a
//! node that stops cleanly removes itself.

use super::Shared;
use crate::node::{NodeView, QueueWeight, RunningJob};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many beats one record outlives.
const BEATS_KEPT: u32 = 3;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.node_heartbeat;
    let ttl = every * BEATS_KEPT;
    // Redis' clock, like every other time the registry shows.
    let mut started_at = shared
        .broker
        .now_ms()
        .await
        .ok()
        .and_then(crate::job::ms_to_timestamp);
    loop {
        let record = record(&shared, started_at, ttl);
        match serde_json::to_string(&record) {
            Ok(json) => match shared.broker.node_beat(&shared.id, &json, ttl).await {
                Ok(now) => {
                    started_at = started_at.or_else(|| crate::job::ms_to_timestamp(now));
                }
                Err(e) => tracing::debug!(error = %e, "node heartbeat failed"),
            },
            Err(e) => tracing::debug!(error = %e, "node record does not encode"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => break,
        }
    }
    // Leave the list at once rather than after the expiry; a failure here only delays that.
    let gone = tokio::time::timeout(
        Duration::from_secs(2),
        shared.broker.node_beat(&shared.id, "", Duration::ZERO),
    );
    let _ = gone.await;
}

fn record(shared: &Shared, started_at: Option<jiff::Timestamp>, ttl: Duration) -> NodeView {
    let mut running: Vec<RunningJob> = shared
        .running_snapshot()
        .into_iter()
        .map(|((queue, id), run)| RunningJob {
            queue: crate::shard::logical(&queue).to_owned(),
            id,
            fence: run.fence,
        })
        .collect();
    running.sort_by(|a, b| (&a.queue, &a.id).cmp(&(&b.queue, &b.id)));
    NodeView {
        id: shared.id.clone(),
        name: shared.node.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        host: super::host_name(),
        pid: std::process::id(),
        queues: shared
            .config
            .declared
            .iter()
            .map(|(queue, weight, _)| QueueWeight {
                queue: queue.clone(),
                weight: *weight,
            })
            .collect(),
        concurrency: shared.config.concurrency,
        started_at,
        last_seen_at: None,
        expires_at: None,
        ttl_ms: ttl.as_millis() as u64,
        running,
    }
}
