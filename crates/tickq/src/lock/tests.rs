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

    /// The fence of an acquisition that must succeed.
    async fn held(&mut self, token: &str) -> u64 {
        match self.acquire(token).await {
            Acquired::Held { fence } => fence,
            busy => panic!("{token} could not acquire: {busy:?}"),
        }
    }

    /// Redis' clock in µs.
    async fn clock_us(&mut self) -> u64 {
        let (s, us): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        s * 1_000_000 + us
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
    let before = env.clock_us().await;
    let fence = env.held("a").await;
    // At least Redis' clock in µs: a failover that lost acquisitions cannot issue it again.
    assert!(fence >= before, "fence {fence} below the clock {before}");
    assert_eq!(env.owner().await.as_deref(), Some("a"));
    let pttl = env.pttl().await;
    assert!(pttl > 590_000 && pttl <= 600_000, "{pttl}");
    assert_eq!(env.counter().await, Some(fence));
    // The counter has no TTL: fences outlive every holder.
    let ttl: i64 = env.conn.pttl(&env.keys.fence).await.unwrap();
    assert_eq!(ttl, -1);
}

#[tokio::test]
async fn lock_acquire_twice_with_the_same_token_answers_the_same_fence() {
    let mut env = start().await;
    let fence = env.held("a").await;
    let _: () = env.conn.pexpire(&env.keys.owner, 5_000).await.unwrap();
    assert_eq!(env.acquire("a").await, Acquired::Held { fence });
    assert_eq!(env.counter().await, Some(fence));
    assert!(env.pttl().await > 590_000, "the retry sets the TTL again");
}

#[tokio::test]
async fn lock_acquire_held_by_another_token_is_busy_and_changes_nothing() {
    let mut env = start().await;
    let fence = env.held("a").await;
    let Acquired::Busy { pttl: Some(pttl) } = env.acquire("b").await else {
        panic!("b must find the lock busy");
    };
    assert!(pttl > Duration::from_secs(590), "{pttl:?}");
    assert_eq!(env.owner().await.as_deref(), Some("a"));
    assert_eq!(env.counter().await, Some(fence));
}

#[tokio::test]
async fn lock_acquire_never_reuses_a_fence_after_the_owner_key_is_gone() {
    let mut env = start().await;
    let first = env.held("a").await;
    // The owner key expired (or was deleted): the counter stays.
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    let second = env.held("b").await;
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    let third = env.held("a").await;
    assert!(first < second && second < third, "{first} {second} {third}");
}

#[tokio::test]
async fn lock_acquire_after_a_lost_counter_still_issues_a_greater_fence() {
    // A failover to a replica that never got the last acquisitions: the counter is behind
    // (here: gone). The clock floor still puts the next fence above the lost ones.
    let mut env = start().await;
    let lost = env.held("a").await;
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    let _: () = env.conn.del(&env.keys.fence).await.unwrap();
    let next = env.held("b").await;
    assert!(next > lost, "fence {next} issued again after {lost}");
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
    let fence = env.held("a").await;
    assert!(locks::release(&mut env.conn, &env.keys, "a").await.unwrap());
    assert_eq!(env.owner().await, None);
    assert_eq!(env.counter().await, Some(fence), "the fence counter stays");
    // Twice: nothing left to release.
    assert!(!locks::release(&mut env.conn, &env.keys, "a").await.unwrap());
    assert!(env.held("b").await > fence);
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
    let f = env.held("a").await;
    assert_eq!(env.set("k", "v1", f).await, FencedSet::Written);
    assert_eq!(env.get("k").await, Some(("v1".into(), f)));
    // Twice: accepted again, same state.
    assert_eq!(env.set("k", "v1", f).await, FencedSet::Written);
    assert_eq!(env.get("k").await, Some(("v1".into(), f)));
    assert_eq!(env.get("other").await, None);
}

#[tokio::test]
async fn lock_fenced_set_refuses_a_holder_as_soon_as_a_newer_one_acquired() {
    let mut env = start().await;
    let a = env.held("a").await;
    assert_eq!(env.set("k", "from a", a).await, FencedSet::Written);
    let _: () = env.conn.del(&env.keys.owner).await.unwrap();
    let b = env.held("b").await;
    // b has not written yet; a is refused all the same.
    assert_eq!(
        env.set("k", "late a", a).await,
        FencedSet::Stale {
            latest: b,
            stored: a
        }
    );
    assert_eq!(env.get("k").await, Some(("from a".into(), a)));
    assert_eq!(env.set("k", "from b", b).await, FencedSet::Written);
    assert_eq!(
        env.set("k", "late a", a).await,
        FencedSet::Stale {
            latest: b,
            stored: b
        }
    );
    assert_eq!(env.get("k").await, Some(("from b".into(), b)));
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
    let a = env.held("a").await;
    assert_eq!(
        env.set("k", "v", a + 7).await,
        FencedSet::Stale {
            latest: a,
            stored: 0
        }
    );
    assert_eq!(env.get("k").await, None);
}

#[tokio::test]
async fn lock_fenced_set_never_goes_below_the_stored_fence() {
    let mut env = start().await;
    let a = env.held("a").await;
    // A value written by a fence the counter no longer matches (the counter was reset by an
    // operator, or lost in a failover): the stored fence still wins.
    let newer = (a + 9).to_string();
    let _: () = env
        .conn
        .hset_multiple(
            env.keys.data("k"),
            &[("value", "new"), ("fence", newer.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(
        env.set("k", "old", a).await,
        FencedSet::Stale {
            latest: a,
            stored: a + 9
        }
    );
    assert_eq!(env.get("k").await, Some(("new".into(), a + 9)));
}
