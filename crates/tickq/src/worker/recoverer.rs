//! Recoverer: returns jobs whose lease expired to pending (or dead, after their last attempt).
//!
//! Every worker runs one; the recover script is atomic, so several racing is harmless.

use super::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 500;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        for (keys, _) in &shared.config.queues {
            loop {
                match shared
                    .broker
                    .recover(keys, &shared.config.retention, BATCH)
                    .await
                {
                    Ok(r) => {
                        let n = r.to_pending + r.to_dead + r.to_cancelled;
                        if r.to_pending > 0 {
                            // The recover script wakes idle workers through Redis; this node
                            // knows there is work already, so it wakes itself without waiting
                            // for that round trip.
                            shared.wake.notify_one();
                        }
                        if n > 0 {
                            shared.counters.recovered.fetch_add(n, Ordering::Relaxed);
                            tracing::info!(queue = %keys.name, to_pending = r.to_pending, to_dead = r.to_dead, to_cancelled = r.to_cancelled, "recovered jobs with expired leases");
                        }
                        if n < BATCH as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(queue = %keys.name, error = %e, "recover failed");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.recover_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}
