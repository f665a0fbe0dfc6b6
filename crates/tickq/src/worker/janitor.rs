//! Janitor: drops finished jobs past their retention, so nothing grows without bound.

use super::Shared;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 1000;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.janitor_interval) => {}
            _ = stop.cancelled() => return,
        }
        for (keys, _) in &shared.config.queues {
            loop {
                match shared
                    .broker
                    .janitor(keys, &shared.config.retention, BATCH)
                    .await
                {
                    Ok(n) if n >= BATCH as u64 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(queue = %keys.name, error = %e, "janitor failed");
                        break;
                    }
                }
            }
        }
    }
}
