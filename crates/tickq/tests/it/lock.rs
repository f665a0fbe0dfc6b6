//! Locks at run time, against real redis-servers: exclusion under contention, release, crash,
//! renewal, the lost signal (lock taken over, Redis stalled, holder stalled), fenced writes and
//! waiting for replicas.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickq::{Client, ErrorKind, FencedWrite, LostReason, Released};
use tickq_testkit::TestRedis;

fn redis() -> TestRedis {
    TestRedis::builder().appendonly(false).start()
}

async fn raw_del(redis: &TestRedis, key: &str) {
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

fn owner_key(name: &str) -> String {
    // The schema of docs/redis-keys.md; tests may spell it out, the library builds it in keys.rs.
    format!("tickq:{{lock:{name}}}:owner")
}

/// Whether anyone holds `name` now, as a third party sees it.
async fn held(client: &Client, name: &str) -> bool {
    match client.lock(name).try_acquire().await.unwrap() {
        Some(guard) => {
            assert_eq!(guard.release().await.unwrap(), Released::Released);
            false
        }
        None => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_excludes_many_concurrent_tasks_and_fences_increase() {
    let redis = redis();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(Client::connect(&redis.url()).await.unwrap());
    }
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = clients[i % clients.len()].clone();
        let (inside, overlaps, entered) = (inside.clone(), overlaps.clone(), entered.clone());
        tasks.push(tokio::spawn(async move {
            let mut not_held = 0;
            for _ in 0..3 {
                let guard = client
                    .lock("crit")
                    .ttl(Duration::from_secs(5))
                    .wait(Duration::from_secs(60))
                    .acquire()
                    .await
                    .unwrap()
                    .expect("acquired within the wait");
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                entered.lock().unwrap().push(guard.fence());
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                if guard.release().await.unwrap() == Released::NotHeld {
                    not_held += 1;
                }
            }
            not_held
        }));
    }
    let mut not_held = 0;
    for task in tasks {
        not_held += task.await.unwrap();
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two holders were inside at once"
    );
    assert_eq!(not_held, 0, "every holder still held the lock at release");
    let entered = entered.lock().unwrap();
    assert_eq!(entered.len(), 72);
    assert!(
        entered.windows(2).all(|w| w[0] < w[1]),
        "fences in order of entry must increase: {entered:?}"
    );
}

#[tokio::test]
async fn lock_release_by_a_non_holder_is_a_no_op() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let a = client.lock("r").try_acquire().await.unwrap().unwrap();
    // a's key is gone (as if it expired) and b holds the lock now.
    raw_del(&redis, &owner_key("r")).await;
    let b = client.lock("r").try_acquire().await.unwrap().unwrap();
    assert!(b.fence() > a.fence());
    assert_eq!(a.release().await.unwrap(), Released::NotHeld);
    assert!(held(&client, "r").await, "b must still hold the lock");
    assert_eq!(b.release().await.unwrap(), Released::Released);
    assert!(!held(&client, "r").await);
}

#[tokio::test]
async fn lock_of_a_crashed_holder_is_free_after_its_ttl() {
    let redis = redis();
    let url = redis.url();
    let ttl = Duration::from_millis(1500);
    // A crash: the holder's whole runtime goes away with the guard never dropped, so nothing
    // renews and nothing releases.
    let (crashed_at, crashed_fence) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let guard = runtime.block_on(async {
            let client = Client::connect(&url).await.unwrap();
            client
                .lock("c")
                .ttl(ttl)
                .try_acquire()
                .await
                .unwrap()
                .unwrap()
        });
        let acquired = Instant::now();
        let fence = guard.fence();
        std::mem::forget(guard);
        drop(runtime);
        (acquired, fence)
    })
    .join()
    .unwrap();
    let client = Client::connect(&redis.url()).await.unwrap();
    assert!(client.lock("c").try_acquire().await.unwrap().is_none());
    let next = client
        .lock("c")
        .wait(Duration::from_secs(10))
        .acquire()
        .await
        .unwrap()
        .expect("free once the TTL ran out");
    assert!(
        crashed_at.elapsed() >= ttl - Duration::from_millis(300),
        "freed after {:?}, before the TTL",
        crashed_at.elapsed()
    );
    assert!(
        next.fence() > crashed_fence,
        "the next holder's fence is greater"
    );
}

#[tokio::test]
async fn lock_dropped_guard_is_released_in_the_background() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let guard = client.lock("d").try_acquire().await.unwrap().unwrap();
    drop(guard);
    // Long before the 30 s TTL.
    let next = client
        .lock("d")
        .wait(Duration::from_secs(5))
        .acquire()
        .await
        .unwrap();
    assert!(next.is_some());
}

#[tokio::test]
async fn lock_renewal_keeps_it_held_well_past_its_ttl() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ttl = Duration::from_millis(900);
    let guard = client
        .lock("k")
        .ttl(ttl)
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < ttl * 3 {
        assert!(held(&client, "k").await, "lost after {:?}", start.elapsed());
        assert!(!guard.is_lost());
        tokio::time::sleep(ttl / 4).await;
    }
    assert!(guard.valid_until() > Instant::now());
    assert_eq!(guard.release().await.unwrap(), Released::Released);
}

#[tokio::test]
async fn lock_lost_fires_when_another_holder_took_it() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ttl = Duration::from_millis(900);
    let a = client
        .lock("t")
        .ttl(ttl)
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let signal = a.lost_signal();
    raw_del(&redis, &owner_key("t")).await;
    let b = client
        .lock("t")
        .ttl(Duration::from_secs(30))
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    let reason = tokio::time::timeout(ttl * 2, a.lost())
        .await
        .expect("lost must fire at a's next renewal");
    assert_eq!(reason, LostReason::Taken);
    assert!(a.is_lost() && signal.is_lost());
    assert_eq!(signal.reason(), Some(LostReason::Taken));
    assert_eq!(a.release().await.unwrap(), Released::NotHeld);
    assert!(!b.is_lost());
}

#[tokio::test]
async fn lock_lost_fires_when_redis_stalls_past_the_ttl() {
    let mut redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ttl = Duration::from_millis(1000);
    let guard = client
        .lock("s")
        .ttl(ttl)
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    redis.pause();
    let paused = Instant::now();
    let reason = tokio::time::timeout(ttl * 3, guard.lost())
        .await
        .expect("lost must fire when the lease runs out with Redis stalled");
    assert_eq!(reason, LostReason::Expired);
    assert!(guard.is_lost());
    assert!(Instant::now() >= guard.valid_until());
    assert!(
        paused.elapsed() <= ttl + Duration::from_secs(1),
        "{:?}",
        paused.elapsed()
    );
    redis.resume();
}

#[tokio::test]
async fn lock_is_lost_at_once_when_its_holder_was_stalled_past_the_ttl() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ttl = Duration::from_millis(400);
    let guard = client
        .lock("h")
        .ttl(ttl)
        .try_acquire()
        .await
        .unwrap()
        .unwrap();
    // The holder's thread stops (like SIGSTOP, a long GC or swap): the renewal task of this
    // single-threaded runtime cannot run meanwhile, and Redis lets the key expire.
    std::thread::sleep(ttl + Duration::from_millis(200));
    // Before any await: the clock alone says the lock is gone.
    assert!(guard.is_lost());
    assert_eq!(guard.lost_signal().reason(), Some(LostReason::Expired));
    let reason = tokio::time::timeout(Duration::from_millis(200), guard.lost())
        .await
        .expect("lost fires on the first poll after the stall");
    assert_eq!(reason, LostReason::Expired);
}

#[tokio::test]
async fn lock_fenced_write_from_a_stale_holder_is_rejected() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let a = client.lock("f").try_acquire().await.unwrap().unwrap();
    assert_eq!(
        a.fenced_set("cursor", "10").await.unwrap(),
        FencedWrite::Written
    );
    // a stalls; its key expires and b takes the lock.
    raw_del(&redis, &owner_key("f")).await;
    let b = client.lock("f").try_acquire().await.unwrap().unwrap();
    // Refused before b wrote anything.
    assert_eq!(
        a.fenced_set("cursor", "11").await.unwrap(),
        FencedWrite::Stale {
            latest: b.fence(),
            stored: a.fence()
        }
    );
    assert_eq!(
        b.fenced_set("cursor", "20").await.unwrap(),
        FencedWrite::Written
    );
    let store = client.fenced_store("f");
    assert_eq!(
        store.set("cursor", "12", a.fence()).await.unwrap(),
        FencedWrite::Stale {
            latest: b.fence(),
            stored: b.fence()
        }
    );
    let value = store.get("cursor").await.unwrap().unwrap();
    assert_eq!(
        (value.value.as_slice(), value.fence),
        (&b"20"[..], b.fence())
    );
    assert_eq!(store.latest_fence().await.unwrap(), b.fence());
}

#[tokio::test]
async fn lock_acquire_waits_until_its_deadline_and_no_longer() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let holder = client.lock("w").try_acquire().await.unwrap().unwrap();
    let first_fence = holder.fence();
    let wait = Duration::from_millis(400);
    let start = Instant::now();
    assert!(
        client
            .lock("w")
            .wait(wait)
            .acquire()
            .await
            .unwrap()
            .is_none()
    );
    let waited = start.elapsed();
    assert!(waited >= wait, "gave up early: {waited:?}");
    assert!(
        waited < wait + Duration::from_millis(700),
        "slept past the deadline: {waited:?}"
    );

    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        holder.release().await.unwrap()
    });
    let next = client
        .lock("w")
        .wait(Duration::from_secs(10))
        .acquire()
        .await
        .unwrap();
    assert!(next.unwrap().fence() > first_fence);
    assert_eq!(release.await.unwrap(), Released::Released);
}

#[tokio::test]
async fn lock_with_replicas_fails_and_releases_on_a_lone_redis() {
    let redis = redis();
    let client = Client::connect(&redis.url()).await.unwrap();
    let err = client
        .lock("rep")
        .replicas(1, Duration::from_millis(200))
        .try_acquire()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("only 0 of 1 replicas"), "{err}");
    let next = client.lock("rep").try_acquire().await.unwrap();
    assert!(next.expect("released again").fence() > 0);
}

#[tokio::test]
async fn lock_with_replicas_succeeds_with_a_real_replica() {
    // No 5 s pause before the first full sync.
    let primary = TestRedis::builder()
        .tcp()
        .appendonly(false)
        .extra_args(["--repl-diskless-sync-delay", "0"])
        .start();
    let port = primary.port().unwrap().to_string();
    let replica = TestRedis::builder()
        .appendonly(false)
        .extra_args(["--replicaof", "127.0.0.1", port.as_str()])
        .start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.sync_conn())
            .unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never synced: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = Client::connect(&primary.url()).await.unwrap();
    let guard = client
        .lock("rep")
        .replicas(1, Duration::from_secs(5))
        .try_acquire()
        .await
        .unwrap()
        .expect("free lock, one replica");
    let owner: Option<String> = redis::cmd("GET")
        .arg(owner_key("rep"))
        .query(&mut replica.sync_conn())
        .unwrap();
    assert!(owner.is_some(), "the replica has the lock");
    assert_eq!(guard.release().await.unwrap(), Released::Released);
}
