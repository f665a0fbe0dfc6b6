//! Data kept in Redis that only a lock's latest holder can write.

use crate::broker::Broker;
use crate::broker::keys::LockKeys;
use crate::broker::locks::{self, FencedSet};
use crate::{Error, Result};

/// Longest key of a fenced value, in bytes.
const MAX_KEY_LEN: usize = 256;

/// What a fenced write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a stale write changed nothing; the writer should stop"]
pub enum FencedWrite {
    /// Stored, with the writer's fence.
    Written,
    /// Refused: the writer's fence is not the lock's latest (someone acquired the lock after
    /// the writer did), or is older than the stored value's. Nothing changed.
    Stale {
        /// The latest fence issued for the lock.
        latest: u64,
        /// The fence that wrote the stored value (0: no value).
        stored: u64,
    },
}

/// A fenced value and the fence of the holder that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// The value as written.
    pub value: Vec<u8>,
    /// The writer's fence.
    pub fence: u64,
}

/// The fenced data of one lock, made by [`Client::fenced_store`](crate::Client::fenced_store)
/// or [`LockGuard::store`](crate::LockGuard::store).
///
/// Values live in the lock's Redis Cluster slot. A write carries the writer's fence and is
/// accepted only if that fence is the latest one issued for the lock, so a holder that lost
/// the lock (stalled, partitioned, or simply slow) cannot overwrite what a newer holder did, or
/// write at all once a newer holder exists.
#[derive(Clone)]
pub struct FencedStore {
    broker: Broker,
    name: String,
    keys: LockKeys,
}

impl std::fmt::Debug for FencedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedStore")
            .field("lock", &self.name)
            .finish()
    }
}

impl FencedStore {
    pub(super) fn new(broker: Broker, name: &str) -> FencedStore {
        FencedStore {
            broker,
            name: name.to_owned(),
            keys: LockKeys::new(name),
        }
    }

    /// The lock's name.
    pub fn lock_name(&self) -> &str {
        &self.name
    }

    fn check(&self, key: &str) -> Result<()> {
        super::validate_lock_name(&self.name)?;
        if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "invalid fenced key {key:?}: use 1 to {MAX_KEY_LEN} printable characters"
            )));
        }
        Ok(())
    }

    /// Store `value` under `key` if `fence` is the lock's latest fence (see [`FencedWrite`]).
    pub async fn set(&self, key: &str, value: impl AsRef<[u8]>, fence: u64) -> Result<FencedWrite> {
        self.check(key)?;
        let mut conn = self.broker.conn();
        Ok(
            match locks::fenced_set(&mut conn, &self.keys, key, value.as_ref(), fence).await? {
                FencedSet::Written => FencedWrite::Written,
                FencedSet::Stale { latest, stored } => FencedWrite::Stale { latest, stored },
            },
        )
    }

    /// The value under `key` and the fence that wrote it.
    pub async fn get(&self, key: &str) -> Result<Option<Fenced>> {
        self.check(key)?;
        let value = locks::fenced_get(&mut self.broker.conn(), &self.keys, key).await?;
        Ok(value.map(|(value, fence)| Fenced { value, fence }))
    }

    /// The latest fence issued for the lock (0: never acquired).
    pub async fn latest_fence(&self) -> Result<u64> {
        super::validate_lock_name(&self.name)?;
        locks::latest_fence(&mut self.broker.conn(), &self.keys).await
    }
}
