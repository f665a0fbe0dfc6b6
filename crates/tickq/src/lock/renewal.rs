//! Keeping a held lock alive, and deciding when it is lost.
//!
//! One task per guard renews the lock every third of its TTL. The lock is lost when Redis says
//! the token is not the owner any more, or when the *local* lease runs out without a successful
//! renewal. The local lease is counted on the monotonic clock from the moment the acquire (or
//! renew) request was sent, minus a margin for clock drift: Redis started its TTL later than
//! that, so the local lease never outlives the key. That is what makes a stalled holder safe: a
//! process stopped with SIGSTOP finds, the moment it runs again, that its lease is past and the
//! lock must be taken as lost, whatever its last renewal said.

use crate::broker::conn::Conn;
use crate::broker::keys::LockKeys;
use crate::broker::locks;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::LostReason;

/// When a lease taken (or renewed) by a request sent at `sent` ends on the local clock: the TTL
/// less 1% and 2 ms for the two clocks running at different rates.
pub(super) fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - (ttl / 100 + Duration::from_millis(2))
}

/// The state one guard shares with its renewal task and its lost signals.
#[derive(Debug)]
pub(super) struct Lease {
    valid_until: Mutex<Instant>,
    lost: watch::Sender<Option<LostReason>>,
}

impl Lease {
    pub(super) fn new(valid_until: Instant) -> Lease {
        Lease {
            valid_until: Mutex::new(valid_until),
            lost: watch::Sender::new(None),
        }
    }

    pub(super) fn valid_until(&self) -> Instant {
        *self.valid_until.lock().expect("lease poisoned")
    }

    fn extend(&self, until: Instant) {
        *self.valid_until.lock().expect("lease poisoned") = until;
    }

    /// Fire the lost signal (once: the first reason stays).
    fn lose(&self, reason: LostReason) {
        self.lost.send_if_modified(|lost| {
            if lost.is_some() {
                return false;
            }
            *lost = Some(reason);
            true
        });
    }

    /// Lost as recorded, or as the clock says now.
    pub(super) fn lost_reason(&self) -> Option<LostReason> {
        if let Some(reason) = *self.lost.borrow() {
            return Some(reason);
        }
        (Instant::now() >= self.valid_until()).then_some(LostReason::Expired)
    }

    pub(super) async fn wait_lost(&self) -> LostReason {
        let mut lost = self.lost.subscribe();
        // The sender lives as long as the lease, so this only ends when the lock is lost;
        // after a release it waits forever, as documented.
        let reason = match lost.wait_for(Option::is_some).await {
            Ok(reason) => *reason,
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

/// Renew until stopped or lost. Owns the lease's sender side in practice: it is the only writer
/// of `lost` and `valid_until`.
pub(super) async fn run(
    mut conn: Conn,
    keys: Arc<LockKeys>,
    token: Arc<str>,
    ttl: Duration,
    acquired_at: Instant,
    lease: Arc<Lease>,
    stop: CancellationToken,
) {
    let every = ttl / 3;
    // After a failed renewal: soon, but not in a tight loop.
    let retry = (ttl / 10).max(Duration::from_millis(10));
    let mut next = acquired_at + every;
    loop {
        let until = lease.valid_until();
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next.min(until).into()) => {}
        }
        // Checked before renewing, not after: after a stall (SIGSTOP, a starved runtime) both
        // timers are due at once, and a renewal that succeeds now does not mean nobody else
        // held the lock meanwhile.
        if Instant::now() >= until {
            tracing::warn!(lock = %keys.owner, "lock lost: its lease ran out before a renewal succeeded");
            lease.lose(LostReason::Expired);
            return;
        }
        let sent = Instant::now();
        let renewed = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            // Redis stalled or unreachable: the request may hang up to the response timeout,
            // far past the lease.
            _ = tokio::time::sleep_until(until.into()) => {
                tracing::warn!(lock = %keys.owner, "lock lost: Redis did not answer a renewal before the lease ran out");
                lease.lose(LostReason::Expired);
                return;
            }
            renewed = locks::renew(&mut conn, &keys, &token, ttl) => renewed,
        };
        match renewed {
            Ok(true) => {
                lease.extend(valid_until(sent, ttl));
                next = sent + every;
            }
            Ok(false) => {
                tracing::warn!(lock = %keys.owner, "lock lost: Redis says it is not ours any more");
                lease.lose(LostReason::Taken);
                return;
            }
            Err(e) => {
                tracing::debug!(lock = %keys.owner, error = %e, "renewing a lock failed; trying again");
                next = Instant::now() + retry;
            }
        }
    }
}
