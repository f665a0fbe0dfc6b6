//! Table tests of the lock scripts, through `broker::locks`: state in, call, state out.
//!
//! Each test starts its own redis-server, sets the state up with script calls (or raw commands
//! where only a crash or an operator gets there: an owner key deleted by hand, a fence counter
//! ahead of a stale writer), makes the call under test and reads the keys it left.

use crate::broker::Broker;
use crate::broker::conn::Conn;
use crate::broker::keys::LockKeys;
use crate::broker::locks::{self, Acquired, FencedSet};
use redis::AsyncCommands as _;
use std::time::Duration;
use tickq_testkit::TestRedis;

const TTL: Duration = Duration::from_secs(600);

struct Env {
    conn: Conn,
    keys: LockKeys,
    _redis: TestRedis,
}

async fn start() -> Env {
    let redis = TestRedis::builder().appendonly(false).start();
    let broker = Broker::connect(&redis.url(), &Default::default())
        .await
        .unwrap();
    Env {
        conn: broker.conn(),
        keys: LockKeys::new("L"),
        _redis: redis,
    }
}

impl Env {
    async fn acquire(&mut self, token: &str) -> Acquired {
        locks::acquire(&mut self.conn, &self.keys, token, TTL)
            .await
            .unwrap()
    }

    async fn owner(&mut self) -> Option<String> {
        self.conn.get(&self.keys.owner).await.unwrap()
    }

    async fn pttl(&mut self) -> i64 {
        self.conn.pttl(&self.keys.owner).await.unwrap()
    }

    async fn counter(&mut self) -> Option<u64> {
        self.conn.get(&self.keys.fence).await.unwrap()
    }

    async fn set(&mut self, key: &str, value: &str, fence: u64) -> FencedSet {
        locks::fenced_set(&mut self.conn, &self.keys, key, value.as_bytes(), fence)
            .await
            .unwrap()
    }

    async fn get(&mut self, key: &str) -> Option<(String, u64)> {
        locks::fenced_get(&mut self.conn, &self.keys, key)
            .await
            .unwrap()
            .map(|(v, f)| (String::from_utf8(v).unwrap(), f))
    }
}

// ---- lock_acquire ----

#[tokio::test]
async fn lock_acquire_takes_a_free_lock_with_the_next_fence() {
    let mut env = start().await;
    assert_eq!(env.acquire("a").await, Acquired::Held { fence: 1 });
    assert_eq!(env.owner().await.as_deref(), Some("a"));
    let pttl = env.pttl().await;
    assert!(pttl > 590_000 && pttl <= 600_000, "{pttl}");
    assert_eq!(env.counter().await, Some(1));
    // The counter has no TTL: fences outlive every holder.
    let ttl: i64 = env.conn.pttl(&env.keys.fence).await.unwrap();
    assert_eq!(ttl, -1);
}

#[tokio::test]
async fn lock_acquire_twice_with_the_same_token_answers_the_same_fence() {
    let mut env = start().await;
    assert_eq!(env.acquire("a").await, Acquired::Held { fence: 1 });
    let _: () = env.conn.pexpire(&env.keys.owner, 5_000).await.unwrap();
    assert_eq!(env.acquire("a").await, Acquired::Held { fence: 1 });
    assert_eq!(env.counter().await, Some(1));
    assert!(env.pttl().await > 590_000, "the retry sets the TTL again");
}

#[tokio::test]
async fn lock_acquire_held_by_another_token_is_busy_and_changes_nothing() {
    let mut env = start().await;
    env.acquire("a").await;
    let Acquired::Busy { pttl: Some(pttl) } = env.acquire("b").await else {
        panic!("b must find the lock busy");
    };
    assert!(pttl > Duration::from_secs(590), "{pttl:?}");
    assert_eq!(env.owner().await.as_deref(), Some("a"));
    assert_eq!(env.counter().await, Some(1));
}

#[tokio::test]
async fn lock_acquire_never_reuses_a_fence_after_the_owner_key_is_gone() {
    let mut env = start().await;
    env.acquire("a").await;
    // The owner key expired (or was deleted): the counter stays.
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    assert_eq!(env.acquire("b").await, Acquired::Held { fence: 2 });
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    assert_eq!(env.acquire("a").await, Acquired::Held { fence: 3 });
}

// ---- lock_renew ----

#[tokio::test]
async fn lock_renew_extends_the_holders_ttl() {
    let mut env = start().await;
    env.acquire("a").await;
    let _: () = env.conn.pexpire(&env.keys.owner, 5_000).await.unwrap();
    assert!(
        locks::renew(&mut env.conn, &env.keys, "a", TTL)
            .await
            .unwrap()
    );
    assert!(env.pttl().await > 590_000);
    // Twice: the same answer, the TTL moved again.
    assert!(
        locks::renew(&mut env.conn, &env.keys, "a", TTL)
            .await
            .unwrap()
    );
    assert_eq!(env.owner().await.as_deref(), Some("a"));
}

#[tokio::test]
async fn lock_renew_by_another_token_is_refused_and_changes_nothing() {
    let mut env = start().await;
    env.acquire("a").await;
    let _: () = env.conn.pexpire(&env.keys.owner, 5_000).await.unwrap();
    assert!(
        !locks::renew(&mut env.conn, &env.keys, "b", TTL)
            .await
            .unwrap()
    );
    assert!(env.pttl().await <= 5_000);
    assert_eq!(env.owner().await.as_deref(), Some("a"));
}

#[tokio::test]
async fn lock_renew_of_a_gone_lock_does_not_revive_it() {
    let mut env = start().await;
    env.acquire("a").await;
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    assert!(
        !locks::renew(&mut env.conn, &env.keys, "a", TTL)
            .await
            .unwrap()
    );
    assert_eq!(env.owner().await, None);
}

// ---- lock_release ----

#[tokio::test]
async fn lock_release_frees_the_holders_lock_once() {
    let mut env = start().await;
    env.acquire("a").await;
    assert!(locks::release(&mut env.conn, &env.keys, "a").await.unwrap());
    assert_eq!(env.owner().await, None);
    assert_eq!(env.counter().await, Some(1), "the fence counter stays");
    // Twice: nothing left to release.
    assert!(!locks::release(&mut env.conn, &env.keys, "a").await.unwrap());
    assert_eq!(env.acquire("b").await, Acquired::Held { fence: 2 });
}

#[tokio::test]
async fn lock_release_by_another_token_changes_nothing() {
    let mut env = start().await;
    env.acquire("a").await;
    assert!(!locks::release(&mut env.conn, &env.keys, "b").await.unwrap());
    assert_eq!(env.owner().await.as_deref(), Some("a"));
    assert!(env.pttl().await > 590_000);
}

// ---- lock_fenced_set ----

#[tokio::test]
async fn lock_fenced_set_accepts_the_latest_fence() {
    let mut env = start().await;
    env.acquire("a").await;
    assert_eq!(env.set("k", "v1", 1).await, FencedSet::Written);
    assert_eq!(env.get("k").await, Some(("v1".into(), 1)));
    // Twice: accepted again, same state.
    assert_eq!(env.set("k", "v1", 1).await, FencedSet::Written);
    assert_eq!(env.get("k").await, Some(("v1".into(), 1)));
    assert_eq!(env.get("other").await, None);
}

#[tokio::test]
async fn lock_fenced_set_refuses_a_holder_as_soon_as_a_newer_one_acquired() {
    let mut env = start().await;
    env.acquire("a").await;
    assert_eq!(env.set("k", "from a", 1).await, FencedSet::Written);
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    assert_eq!(env.acquire("b").await, Acquired::Held { fence: 2 });
    // b has not written yet; a is refused all the same.
    assert_eq!(
        env.set("k", "late a", 1).await,
        FencedSet::Stale {
            latest: 2,
            stored: 1
        }
    );
    assert_eq!(env.get("k").await, Some(("from a".into(), 1)));
    assert_eq!(env.set("k", "from b", 2).await, FencedSet::Written);
    assert_eq!(
        env.set("k", "late a", 1).await,
        FencedSet::Stale {
            latest: 2,
            stored: 2
        }
    );
    assert_eq!(env.get("k").await, Some(("from b".into(), 2)));
}

#[tokio::test]
async fn lock_fenced_set_refuses_fences_never_issued() {
    let mut env = start().await;
    // No lock ever taken: fence 0 is not a fence.
    assert_eq!(
        env.set("k", "v", 0).await,
        FencedSet::Stale {
            latest: 0,
            stored: 0
        }
    );
    env.acquire("a").await;
    assert_eq!(
        env.set("k", "v", 7).await,
        FencedSet::Stale {
            latest: 1,
            stored: 0
        }
    );
    assert_eq!(env.get("k").await, None);
}

#[tokio::test]
async fn lock_fenced_set_never_goes_below_the_stored_fence() {
    let mut env = start().await;
    env.acquire("a").await;
    // A value written by a fence the counter no longer matches (the counter was reset by an
    // operator, or lost in a failover): the stored fence still wins.
    let _: () = env
        .conn
        .hset_multiple(env.keys.data("k"), &[("value", "new"), ("fence", "9")])
        .await
        .unwrap();
    assert_eq!(
        env.set("k", "old", 1).await,
        FencedSet::Stale {
            latest: 1,
            stored: 9
        }
    );
    assert_eq!(env.get("k").await, Some(("new".into(), 9)));
}
