//! Janitor: drops finished jobs past their retention and workflow parts whose home never came,
//! so nothing grows without bound; and when
//! Redis' memory is above the high-water mark, drops completed and cancelled jobs at once,
//! oldest first, so that room comes from finished work before anything else gives.

use super::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 1000;

/// How often memory is looked at: one `INFO memory` per worker per period (a few µs of
/// Redis time), so a filling Redis is trimmed within about a second rather than at the next
/// retention run (a minute by default).
const MEMORY_CHECK: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.janitor_interval;
    let mut next_retention = Instant::now() + every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every.min(MEMORY_CHECK)) => {}
            _ = stop.cancelled() => return,
        }
        let tight = match shared.broker.memory_tight(MEMORY_CHECK / 2).await {
            Ok(tight) => tight,
            Err(e) => {
                tracing::debug!(error = %e, "janitor could not read Redis' memory use");
                false
            }
        };
        if tight {
            trim(&shared).await;
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + every;
            for (keys, _) in &shared.config.queues {
                sweep(&shared, keys, false).await;
                drop_orphan_parts(&shared, keys).await;
            }
        }
    }
}

/// Memory is tight: drop completed and cancelled jobs of every queue, a batch at a time, until
/// the memory use is below the mark again or none are left.
async fn trim(shared: &Shared) {
    for (keys, _) in &shared.config.queues {
        let dropped = sweep(shared, keys, true).await;
        if dropped > 0 {
            tracing::warn!(
                queue = %keys.name,
                dropped,
                "Redis memory above the high-water mark: dropped completed and cancelled jobs"
            );
        }
        match shared.broker.read_memory().await {
            Ok(sample) if !sample.above(shared.broker.high_water.min(1.0)) => return,
            _ => {}
        }
    }
}

/// Workflow parts whose home never came (a submit stopped half way): their steps would wait
/// forever.
async fn drop_orphan_parts(shared: &Shared, keys: &crate::broker::keys::QueueKeys) {
    let age = crate::broker::ORPHAN_PART_AGE;
    if let Err(e) = shared.broker.drop_orphan_parts(keys, age, 100).await {
        tracing::debug!(queue = %keys.name, error = %e, "janitor could not look for orphan workflow parts");
    }
}

/// One queue, in batches until a batch comes back short; answers how many entries went.
async fn sweep(shared: &Shared, keys: &crate::broker::keys::QueueKeys, trim: bool) -> u64 {
    let mut total = 0;
    loop {
        match shared
            .broker
            .janitor(keys, &shared.config.retention, BATCH, trim)
            .await
        {
            Ok(n) => {
                total += n;
                if n < BATCH as u64 {
                    return total;
                }
            }
            Err(e) => {
                tracing::debug!(queue = %keys.name, error = %e, "janitor failed");
                return total;
            }
        }
    }
}
