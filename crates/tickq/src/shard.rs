//! Sharded queues: one logical queue stored as K slot-local sub-queues, so that on Redis
//! Cluster a single hot queue spreads over every master (docs/queue-control.md has the user's view).
//!
//! Why shards are whole queues: every script of a queue touches keys of one hash tag, so a
//! shard that is an ordinary queue under its own tag needs no script change at all. Shard `i`
//! of `hot` is the queue `hot#i` (or `hot#i.n`): `#` is not allowed in a user's queue name, so
//! no user queue can collide with a shard, and the suffix `.n` is the first one whose hash
//! slot falls in the `i`-th K-th of the slot range. A fresh cluster gives its masters equal
//! contiguous slot ranges, so K = masters puts one shard on each master.
//!
//! The shard count lives in the global hash `tickq:shards` (queue -> K; read and declared by
//! broker/shards.rs), written once when a worker or [`Client::shard_queue`](crate::Client::shard_queue)
//! declares the queue; every client, worker and inspector reads it from there. A different K
//! for a declared queue is refused: a smaller one would orphan the jobs of the shards past it,
//! and a larger one would change every shard's name.
//!
//! Besides its K shards, a sharded queue keeps its *base* queue (`hot` itself): jobs enqueued
//! before the queue was sharded, or by a producer that read "not sharded" before the
//! declaration, land there, and workers and the inspector treat it as one more shard. So a
//! stale routing decision costs nothing but balance.

use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most shards one queue may have.
pub const MAX_SHARDS: u32 = 1024;

/// Hash slots of Redis Cluster (fixed by its specification).
const SLOTS: u32 = 16_384;

/// The shard count of each queue this process has looked up, and the round-robin counter.
#[derive(Debug)]
pub(crate) struct ShardCache {
    counts: Mutex<HashMap<String, u32>>,
    next: AtomicU64,
}

impl Default for ShardCache {
    fn default() -> ShardCache {
        // Producers start at different shards, so that many short-lived producers do not all
        // send their first job to shard 0.
        let start = uuid::Uuid::new_v4().as_u128() as u64;
        ShardCache {
            counts: Mutex::default(),
            next: AtomicU64::new(start),
        }
    }
}

impl ShardCache {
    /// The count looked up before for `queue`, if any.
    pub(crate) fn cached(&self, queue: &str) -> Option<u32> {
        self.counts
            .lock()
            .expect("shard counts poisoned")
            .get(queue)
            .copied()
    }

    /// Remember `queue`'s count as just read from Redis.
    pub(crate) fn remember(&self, queue: &str, count: u32) {
        self.counts
            .lock()
            .expect("shard counts poisoned")
            .insert(queue.to_owned(), count);
    }

    /// The next shard in round-robin order, of `count`.
    pub(crate) fn next_round_robin(&self, count: u32) -> u32 {
        (self.next.fetch_add(1, Ordering::Relaxed) % u64::from(count)) as u32
    }

    /// The shard a new job goes to (of `count` > 1): by its shard key, else its unique key,
    /// else its caller-given id, else round robin.
    pub(crate) fn pick(&self, job: &crate::NewJob, count: u32) -> u32 {
        if let Some(shard) = job.shard {
            // Handed back by a failed enqueue: where it may already be.
            shard % count
        } else if let Some(key) = &job.shard_key {
            route(key, count)
        } else if let Some(unique) = &job.unique {
            route(&unique.key(job), count)
        } else if let Some(id) = &job.id {
            route(id, count)
        } else {
            self.next_round_robin(count)
        }
    }
}

/// The physical queues of one logical queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The logical queue (also the base queue).
    pub(crate) name: String,
    /// The shards' queue names, shard 0 first; empty for an unsharded queue.
    pub(crate) shards: Vec<String>,
}

impl Layout {
    pub(crate) fn new(name: &str, count: u32) -> Layout {
        let shards = if count > 1 {
            (0..count).map(|i| shard_name(name, i, count)).collect()
        } else {
            Vec::new()
        };
        Layout {
            name: name.to_owned(),
            shards,
        }
    }

    pub(crate) fn is_sharded(&self) -> bool {
        !self.shards.is_empty()
    }

    /// Every physical queue that may hold jobs of this queue: the base queue, then the shards.
    pub(crate) fn physical(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.shards.iter().map(String::as_str))
    }
}

/// The queue name of shard `i` of `count` shards of `queue`: `queue#i`, or `queue#i.n` with the
/// smallest `n` whose hash slot lies in the `i`-th `count`-th of the slot range.
pub(crate) fn shard_name(queue: &str, i: u32, count: u32) -> String {
    let wanted = |name: &str| u32::from(slot(name)) * count / SLOTS == i;
    let plain = format!("{queue}#{i}");
    if wanted(&plain) {
        return plain;
    }
    (1u32..)
        .map(|n| format!("{queue}#{i}.{n}"))
        .find(|name| wanted(name))
        .expect("some suffix lands in every range")
}

/// The logical queue a physical queue belongs to (`hot#3.7` -> `hot`; `hot` -> `hot`).
pub(crate) fn logical(physical: &str) -> &str {
    physical.split_once('#').map_or(physical, |(q, _)| q)
}

/// The Redis Cluster hash slot of keys tagged `{tag}`: CRC16 (XMODEM) of the tag, mod 16384.
pub(crate) fn slot(tag: &str) -> u16 {
    let mut crc: u16 = 0;
    for &b in tag.as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS as u16
}

/// The shard a routing key goes to: FNV-1a of the key, mod `count`. Stable across processes
/// and versions, so equal keys always meet in one shard.
pub(crate) fn route(key: &str, count: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(count)) as u32
}

/// Split a limit of `total` over `count` shards: `total / count` each, and one more for the
/// first `total % count` shards, so the shares add up to exactly `total`.
pub(crate) fn split(total: u32, count: u32, shard: u32) -> u32 {
    total / count + u32::from(shard < total % count)
}

pub(crate) fn validate_count(queue: &str, count: u32) -> Result<()> {
    if !(1..=MAX_SHARDS).contains(&count) {
        return Err(Error::invalid(format!(
            "queue {queue}: shards must be between 1 and {MAX_SHARDS}, not {count}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::is_shard_name;

    #[test]
    fn slot_matches_redis_cluster() {
        // Values from CLUSTER KEYSLOT on Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        // The CRC16/XMODEM check value.
        assert_eq!(slot("123456789"), 0x31c3);
    }

    #[test]
    fn shards_spread_over_the_slot_range() {
        for count in [2u32, 3, 4, 7, 16] {
            for i in 0..count {
                let name = shard_name("hot", i, count);
                assert!(is_shard_name(&name), "{name}");
                assert_eq!(logical(&name), "hot");
                let s = u32::from(slot(&name));
                assert_eq!(s * count / SLOTS, i, "{name} slot {s}");
            }
        }
        assert_eq!(
            Layout::new("hot", 1).physical().collect::<Vec<_>>(),
            ["hot"]
        );
        assert_eq!(Layout::new("hot", 3).physical().count(), 4);
    }

    #[test]
    fn shard_names_are_not_user_queue_names() {
        assert!(crate::job::validate_queue_name("hot#1").is_err());
        assert!(!is_shard_name("hot"));
        assert!(!is_shard_name("hot#"));
        assert!(!is_shard_name("hot#x"));
        assert!(!is_shard_name("#1"));
        assert!(is_shard_name("hot#12.3"));
    }

    #[test]
    fn limits_split_adds_up() {
        for (total, count) in [(10, 3), (3, 3), (7, 4), (100, 1), (5, 5)] {
            let sum: u32 = (0..count).map(|i| split(total, count, i)).sum();
            assert_eq!(sum, total);
            assert!((0..count).all(|i| split(total, count, i) >= total / count));
        }
        assert_eq!(split(10, 3, 0), 4);
        assert_eq!(split(10, 3, 2), 3);
    }

    #[test]
    fn routing_is_stable_and_spreads() {
        assert_eq!(route("customer-7", 8), route("customer-7", 8));
        let mut hits = [0u32; 4];
        for i in 0..4000 {
            hits[route(&format!("k{i}"), 4) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
    }
}
