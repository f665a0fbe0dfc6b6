//! Locks: a mutual-exclusion lease on Redis with a TTL, automatic renewal and fencing tokens.
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | [`LockBuilder`]: options and the acquire loop (backoff, deadline, replicas) |
//! | `guard.rs` | [`LockGuard`] and the lost signal ([`LostSignal`], [`LostReason`]) |
//! | `renewal.rs` | the background task that renews a held lock and decides it is lost |
//! | `fenced.rs` | [`FencedStore`]: data in Redis that only the latest holder can write |
//!
//! The Redis side (one script per step) is in `broker/locks.rs` and `broker/lua/lock_*.lua`.

mod fenced;
mod guard;
mod renewal;

#[cfg(test)]
mod tests;

pub use fenced::{Fenced, FencedStore, FencedWrite};
pub use guard::{LockGuard, LostReason, LostSignal, Released};

use crate::broker::Broker;
use crate::broker::keys::LockKeys;
use crate::broker::locks::{self, Acquired};
use crate::{Client, Error, ErrorKind, Result};
use rand::Rng as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A lock's TTL unless [`LockBuilder::ttl`] says otherwise.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);
/// The shortest TTL a lock may have: renewal runs every third of it.
pub const MIN_LOCK_TTL: Duration = Duration::from_millis(100);

/// Longest lock name, in bytes.
const MAX_LOCK_NAME_LEN: usize = 128;
/// First pause between two attempts of a waiting acquire; it doubles up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Check a lock name: 1 to 128 letters, digits, `_`, `-`, `.`, `:` or `/`. (Braces are
/// excluded because the name is the Redis Cluster hash tag of the lock's keys.)
pub fn validate_lock_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/');
    if name.is_empty() || name.len() > MAX_LOCK_NAME_LEN || !name.chars().all(ok_char) {
        return Err(Error::invalid(format!(
            "invalid lock name {name:?}: use 1 to {MAX_LOCK_NAME_LEN} letters, digits, '_', '-', \
             '.', ':' or '/'"
        )));
    }
    Ok(())
}

impl Client {
    /// A lock named `name`, to configure and acquire:
    /// `client.lock("nightly").ttl(ttl).wait(wait).acquire().await?`.
    pub fn lock(&self, name: &str) -> LockBuilder {
        LockBuilder {
            broker: self.broker.clone(),
            name: name.to_owned(),
            ttl: DEFAULT_LOCK_TTL,
            wait: Duration::ZERO,
            replicas: None,
        }
    }

    /// The fenced data of lock `name`: values that only the lock's latest holder can write.
    pub fn fenced_store(&self, name: &str) -> FencedStore {
        FencedStore::new(self.broker.clone(), name)
    }
}

/// How to acquire one lock. Made by [`Client::lock`].
#[derive(Clone)]
#[must_use = "a lock builder does nothing until `acquire` or `try_acquire` is awaited"]
pub struct LockBuilder {
    broker: Broker,
    name: String,
    ttl: Duration,
    wait: Duration,
    replicas: Option<(u32, Duration)>,
}

impl std::fmt::Debug for LockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockBuilder")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("wait", &self.wait)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl LockBuilder {
    /// How long the lock outlives its holder's last renewal. The guard renews it every third
    /// of this while it lives; a holder that crashes or stalls keeps others out for at most
    /// this long. Default: [`DEFAULT_LOCK_TTL`] (30 s); at least [`MIN_LOCK_TTL`].
    pub fn ttl(mut self, ttl: Duration) -> LockBuilder {
        self.ttl = ttl;
        self
    }

    /// How long [`acquire`](Self::acquire) keeps trying while another holder has the lock.
    /// Default: zero (one attempt).
    pub fn wait(mut self, wait: Duration) -> LockBuilder {
        self.wait = wait;
        self
    }

    /// After taking the lock, wait up to `timeout` for `replicas` replicas to acknowledge it
    /// (Redis `WAIT`); if fewer do, the lock is released again and acquiring fails with
    /// [`ErrorKind::Unavailable`]. Narrows, but does not close, the window in which a failover
    /// loses a lock just taken (see `docs/locks.md`). Default: off.
    pub fn replicas(mut self, replicas: u32, timeout: Duration) -> LockBuilder {
        self.replicas = Some((replicas, timeout));
        self
    }

    /// One attempt: the guard, or `None` when someone else holds the lock.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        self.acquire_within(Duration::ZERO).await
    }

    /// Take the lock, trying again until the [`wait`](Self::wait) time is up: the guard, or
    /// `None` when someone else still held it at the end. Pauses between attempts back off
    /// (10 ms doubling to 500 ms, with jitter), never outlast the holder's remaining TTL, and
    /// never end past the deadline.
    pub async fn acquire(&self) -> Result<Option<LockGuard>> {
        self.acquire_within(self.wait).await
    }

    async fn acquire_within(&self, wait: Duration) -> Result<Option<LockGuard>> {
        validate_lock_name(&self.name)?;
        if self.ttl < MIN_LOCK_TTL {
            return Err(Error::invalid(format!(
                "lock TTL {:?} is too short: use at least {MIN_LOCK_TTL:?}",
                self.ttl
            )));
        }
        let until = Instant::now() + wait;
        let keys = Arc::new(LockKeys::new(&self.name));
        let token: Arc<str> = format!("{:032x}", rand::random::<u128>()).into();
        // WAIT counts the writes of the connection it is sent on, so a lock that waits for
        // replicas takes its own connection (whose WAIT also cannot stall the shared one).
        let mut conn = match self.replicas {
            Some((_, timeout)) => self.broker.blocking_connection(timeout).await?,
            None => self.broker.conn(),
        };
        let mut attempt = 0u32;
        loop {
            // The lease is counted from before the request leaves: Redis starts the TTL later
            // than that, so the local deadline never outlives the key.
            let sent = Instant::now();
            let busy_for = match locks::acquire(&mut conn, &keys, &token, self.ttl).await {
                Ok(Acquired::Held { fence }) => {
                    if let Some((replicas, timeout)) = self.replicas {
                        self.check_replicas(&mut conn, &keys, &token, replicas, timeout)
                            .await?;
                    }
                    if Instant::now() < renewal::valid_until(sent, self.ttl) {
                        // For `Inspector::locks` only: a failure here costs a listing entry,
                        // never the lock.
                        let _ = self.broker.index_lock(&self.name).await;
                        return Ok(Some(LockGuard::start(
                            self.broker.clone(),
                            self.name.clone(),
                            keys,
                            token,
                            fence,
                            self.ttl,
                            sent,
                        )));
                    }
                    // The answer came so late that the lease may be over already: give it
                    // back and try again, as if it had been busy.
                    let _ = locks::release(&mut conn, &keys, &token).await;
                    None
                }
                Ok(Acquired::Busy { pttl }) => pttl,
                // The token makes a retried acquire safe (it answers the same fence), so a
                // waiting acquire rides out a dropped connection.
                Err(e) if is_transient(&e) && Instant::now() < until => None,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let pause = backoff(attempt, busy_for).min(until - now);
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(pause).await;
        }
    }

    async fn check_replicas(
        &self,
        conn: &mut crate::broker::conn::Conn,
        keys: &LockKeys,
        token: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<()> {
        let acked = match locks::wait_replicas(conn, replicas, timeout).await {
            Ok(acked) => acked,
            Err(e) => {
                let _ = locks::release(conn, keys, token).await;
                return Err(e);
            }
        };
        if acked >= replicas {
            return Ok(());
        }
        locks::release(conn, keys, token).await?;
        Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "lock {}: only {acked} of {replicas} replicas acknowledged it within {timeout:?}, \
                 so it was released again; check the replicas (INFO replication) or ask for fewer",
                self.name
            ),
        ))
    }
}

fn is_transient(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
}

/// The pause before the next attempt: exponential with jitter (half to all of the step), and
/// no longer than the holder's remaining TTL, after which the lock is free at the latest.
fn backoff(attempt: u32, holder_ttl: Option<Duration>) -> Duration {
    let step = BACKOFF_MIN
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    let jittered = rand::rng().random_range(step / 2..=step);
    match holder_ttl {
        Some(ttl) => jittered.min(ttl + Duration::from_millis(1)),
        None => jittered,
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_respects_the_holder_ttl() {
        for attempt in 0..40 {
            let pause = backoff(attempt, None);
            assert!(
                pause >= BACKOFF_MIN / 2 && pause <= BACKOFF_MAX,
                "{pause:?}"
            );
        }
        assert!(backoff(0, None) <= BACKOFF_MIN);
        assert!(backoff(20, None) >= BACKOFF_MAX / 2);
        let short = Some(Duration::from_millis(3));
        assert!(backoff(20, short) <= Duration::from_millis(4));
    }

    #[test]
    fn lock_names() {
        for good in ["a", "nightly-report", "db/migrate:v2", &"x".repeat(128)] {
            validate_lock_name(good).unwrap();
        }
        for bad in ["", "a b", "{x}", "a\n", &"x".repeat(129)] {
            let err = validate_lock_name(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }
}
