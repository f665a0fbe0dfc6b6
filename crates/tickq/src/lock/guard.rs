//! The guard of a held lock and its lost signal.

use super::fenced::{FencedStore, FencedWrite};
use super::renewal::{self, Lease};
use crate::Result;
use crate::broker::Broker;
use crate::broker::keys::LockKeys;
use crate::broker::locks;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why a lock was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// Redis says the lock is not ours any more: the key expired, was deleted, or another
    /// holder has it.
    Taken,
    /// No renewal succeeded before the lease ran out on the local clock (Redis unreachable or
    /// stalled, or this process was stopped or starved). Another holder may have it.
    Expired,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LostReason::Taken => "Redis says another holder has it or it expired",
            LostReason::Expired => "its lease ran out before a renewal succeeded",
        })
    }
}

/// What [`LockGuard::release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The lock was ours and is free now.
    Released,
    /// The lock was not ours any more (lost); nothing was changed.
    NotHeld,
}

/// Fires once when the lock is lost. Cheap to clone and to move into the task doing the work.
#[derive(Debug, Clone)]
pub struct LostSignal {
    lease: Arc<Lease>,
}

impl LostSignal {
    /// Whether the lock is lost: the renewal found it taken, or the lease ran out on the local
    /// clock. Checked against the clock itself, so it is true at once after this process was
    /// stopped past the lease, before the renewal task has had a chance to run. After a release
    /// it becomes true when the last lease would have ended: the lock is not held either way.
    pub fn is_lost(&self) -> bool {
        self.lease.lost_reason().is_some()
    }

    /// Why the lock was lost, or `None` while it is held.
    pub fn reason(&self) -> Option<LostReason> {
        self.lease.lost_reason()
    }

    /// Wait until the lock is lost. Never completes once the lock was released or its guard
    /// dropped (the lock was given up, not lost).
    pub async fn wait(&self) -> LostReason {
        self.lease.wait_lost().await
    }
}

/// A held lock. Renewed in the background while it lives.
///
/// Release it with [`release`](Self::release). Dropping it stops the renewal and sends a
/// release in the background (not awaited: if the runtime shuts down first, the lock is free
/// when its TTL runs out).
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard {
    broker: Broker,
    name: String,
    keys: Arc<LockKeys>,
    token: Arc<str>,
    fence: u64,
    lease: Arc<Lease>,
    stop: CancellationToken,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("fence", &self.fence)
            .field("lost", &self.lease.lost_reason())
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    pub(super) fn start(
        broker: Broker,
        name: String,
        keys: Arc<LockKeys>,
        token: Arc<str>,
        fence: u64,
        ttl: Duration,
        sent: Instant,
    ) -> LockGuard {
        let lease = Arc::new(Lease::new(renewal::valid_until(sent, ttl)));
        let stop = CancellationToken::new();
        tokio::spawn(renewal::run(
            broker.conn(),
            keys.clone(),
            token.clone(),
            ttl,
            sent,
            lease.clone(),
            stop.clone(),
        ));
        LockGuard {
            broker,
            name,
            keys,
            token,
            fence,
            lease,
            stop,
            released: false,
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This holder's fencing token: greater than that of every earlier holder of the lock.
    /// Pass it along with every write the lock protects, so that the store can refuse writes
    /// from older holders (see [`FencedStore`]).
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Until when the lock is ours for sure (local monotonic clock), as of the last successful
    /// renewal. Past it, [`is_lost`](Self::is_lost) is true.
    pub fn valid_until(&self) -> Instant {
        self.lease.valid_until()
    }

    /// Completes when the lock is lost (see [`LostSignal::wait`]). Stop the protected work
    /// then: another holder may already be running it.
    pub fn lost(&self) -> impl Future<Output = LostReason> + Send + 'static {
        let signal = self.lost_signal();
        async move { signal.wait().await }
    }

    /// The lost signal, to hand to the task that does the work.
    pub fn lost_signal(&self) -> LostSignal {
        LostSignal {
            lease: self.lease.clone(),
        }
    }

    /// Whether the lock is lost (see [`LostSignal::is_lost`]).
    pub fn is_lost(&self) -> bool {
        self.lease.lost_reason().is_some()
    }

    /// Write `value` under `key` in the lock's fenced store with this holder's fence.
    pub async fn fenced_set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<FencedWrite> {
        self.store().set(key, value, self.fence).await
    }

    /// The lock's fenced store.
    pub fn store(&self) -> FencedStore {
        FencedStore::new(self.broker.clone(), &self.name)
    }

    /// Stop renewing and delete the lock if it is still ours. A holder that lost the lock gets
    /// [`Released::NotHeld`] and changes nothing: the lock may be someone else's by now.
    pub async fn release(mut self) -> Result<Released> {
        self.released = true;
        self.stop.cancel();
        let ours = locks::release(&mut self.broker.conn(), &self.keys, &self.token).await?;
        Ok(if ours {
            Released::Released
        } else {
            Released::NotHeld
        })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.released {
            return;
        }
        // Best effort: without a runtime (or once it shuts down) the TTL frees the lock.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut conn = self.broker.conn();
            let keys = self.keys.clone();
            let token = self.token.clone();
            runtime.spawn(async move {
                let _ = locks::release(&mut conn, &keys, &token).await;
            });
        }
    }
}
