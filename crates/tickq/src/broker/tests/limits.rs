//! Table tests of queue limits: what the claim script leases under a concurrency or rate
//! limit, when it says to look again, and the wake-ups that free slots send.

use super::{Env, HOUR, KEEP, LEASE, job, start};
use crate::broker::*;
use crate::{QueueLimits, Rate};
use redis::AsyncCommands;

impl Env {
    async fn limit(&self, limits: QueueLimits) {
        self.broker.set_limits(&self.keys, &limits).await.unwrap();
        self.clear_marker().await;
    }

    async fn clear_marker(&self) {
        let _: () = self.conn.clone().del(&self.keys.wake).await.unwrap();
    }

    async fn enqueue_n(&self, n: usize) {
        for i in 0..n {
            self.enqueue(job(&format!("j{i}"))).await;
        }
    }
}

fn concurrency(n: u32) -> QueueLimits {
    QueueLimits {
        concurrency: Some(n),
        rate: None,
    }
}

fn rate(jobs: u32, per: Duration) -> QueueLimits {
    QueueLimits {
        concurrency: None,
        rate: Some(Rate::new(jobs, per)),
    }
}

#[tokio::test]
async fn a_concurrency_limit_caps_active_jobs_across_workers() {
    let env = start().await;
    env.enqueue_n(6).await;
    env.limit(concurrency(3)).await;

    let first = env.claim("w1", 2).await;
    assert_eq!(first.jobs.len(), 2);
    let second = env.claim("w2", 10).await;
    assert_eq!(second.jobs.len(), 1, "one slot was left");
    env.clear_marker().await; // set by the first claim, which left work and a free slot
    // Full: nothing leased, and no time to look again (a freed slot sends a wake-up).
    let third = env.claim("w3", 10).await;
    assert!(third.jobs.is_empty());
    assert_eq!(third.next_due_ms, -1);
    assert!(
        !env.marker_set().await,
        "a full queue must not wake idle workers"
    );

    // An ack frees a slot and wakes an idle worker.
    let j = &first.jobs[0];
    let acks = [(j.id.clone(), j.fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert!(env.marker_set().await);
    assert_eq!(env.claim("w3", 10).await.jobs.len(), 1);

    // So does a failure, and a recovered lease.
    env.clear_marker().await;
    let j = &first.jobs[1];
    let mode = FailMode::Retry(HOUR);
    env.broker
        .fail(&env.keys, &KEEP, &j.id, j.fence, "x", mode)
        .await
        .unwrap();
    assert!(env.marker_set().await);
}

#[tokio::test]
async fn finishing_wakes_nobody_without_a_limit_or_without_waiting_work() {
    let env = start().await;
    env.enqueue_n(1).await;
    let fence = env.claim_next("j0").await;
    env.clear_marker().await;
    let acks = [("j0".to_owned(), fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert!(!env.marker_set().await, "no limit: no wake-up");

    env.limit(concurrency(1)).await;
    env.enqueue(job("k0")).await;
    let fence = env.claim_next("k0").await;
    env.clear_marker().await;
    let acks = [("k0".to_owned(), fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert!(!env.marker_set().await, "nothing waits: no wake-up");
}

#[tokio::test]
async fn a_rate_limit_caps_starts_in_a_sliding_window() {
    let env = start().await;
    env.enqueue_n(10).await;
    env.limit(rate(3, HOUR)).await;

    let t0 = env.now().await;
    let first = env.claim("w1", 2).await;
    assert_eq!(first.jobs.len(), 2);
    let second = env.claim("w2", 10).await;
    assert_eq!(second.jobs.len(), 1);
    // Used up: look again when the oldest start leaves the window.
    let third = env.claim("w3", 10).await;
    assert!(third.jobs.is_empty());
    let t1 = env.now().await;
    assert!(
        (t0 + 3_600_000..=t1 + 3_600_000).contains(&third.next_due_ms),
        "next_due {} not an hour after the first start",
        third.next_due_ms
    );
    // Finishing a job does not give a start back.
    let j = &first.jobs[0];
    let acks = [(j.id.clone(), j.fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert!(env.claim("w3", 10).await.jobs.is_empty());

    // The log forgets itself when idle.
    let pttl: i64 = env.conn.clone().pttl(&env.keys.rate_log).await.unwrap();
    assert!(pttl > 0 && pttl <= 3_600_000, "{pttl}");
}

#[tokio::test]
async fn starts_leave_the_rate_window_after_its_length() {
    let env = start().await;
    env.enqueue_n(10).await;
    env.limit(rate(3, Duration::from_millis(200))).await;
    assert_eq!(env.claim("w1", 10).await.jobs.len(), 3);
    let full = env.claim("w1", 10).await;
    assert!(full.jobs.is_empty());
    let wait = full.next_due_ms - full.now_ms;
    assert!((0..=200).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_millis(wait as u64 + 5)).await;
    assert_eq!(env.claim("w2", 10).await.jobs.len(), 3);
}

#[tokio::test]
async fn both_limits_apply_together() {
    let env = start().await;
    env.enqueue_n(10).await;
    env.limit(QueueLimits {
        concurrency: Some(2),
        rate: Some(Rate::new(3, HOUR)),
    })
    .await;
    let first = env.claim("w1", 10).await;
    assert_eq!(first.jobs.len(), 2, "concurrency binds first");
    let j = &first.jobs[0];
    let acks = [(j.id.clone(), j.fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert_eq!(env.claim("w1", 10).await.jobs.len(), 1, "then the rate");
    let j = &first.jobs[1];
    let acks = [(j.id.clone(), j.fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert!(env.claim("w1", 10).await.jobs.is_empty());
}

#[tokio::test]
async fn setting_limits_replaces_them_wakes_workers_and_is_counted() {
    let env = start().await;
    env.enqueue_n(5).await;
    env.limit(concurrency(1)).await;
    assert_eq!(env.claim("w1", 10).await.jobs.len(), 1);
    assert!(env.claim("w1", 10).await.jobs.is_empty());

    env.broker
        .set_limits(&env.keys, &rate(10, HOUR))
        .await
        .unwrap();
    assert!(env.marker_set().await, "a change wakes an idle worker");
    let counts = env.broker.counts(&env.keys).await.unwrap();
    assert_eq!(counts.limits, rate(10, HOUR));
    assert_eq!(env.broker.limits(&env.keys).await.unwrap(), rate(10, HOUR));
    assert_eq!(
        env.claim("w1", 10).await.jobs.len(),
        4,
        "concurrency limit gone"
    );

    env.broker
        .set_limits(&env.keys, &QueueLimits::default())
        .await
        .unwrap();
    let exists: bool = env.conn.clone().exists(&env.keys.limits).await.unwrap();
    assert!(!exists);
    assert!(
        env.broker
            .counts(&env.keys)
            .await
            .unwrap()
            .limits
            .is_unlimited()
    );
}

#[tokio::test]
async fn limits_do_not_hold_back_promotion_or_pauses() {
    let env = start().await;
    env.limit(concurrency(1)).await;
    env.enqueue(job("s").delay(Duration::from_millis(1))).await;
    env.enqueue(job("a")).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let batch = env
        .broker
        .claim(&env.keys, "w1", LEASE, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(batch.jobs.len(), 1);
    env.assert_state("s", JobState::Pending).await;
}

#[test]
fn invalid_limits_are_refused_with_a_reason() {
    for bad in [
        concurrency(0),
        rate(0, HOUR),
        rate(5, Duration::from_micros(10)),
    ] {
        let err = bad.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    assert!(concurrency(1).validate().is_ok());
    assert_eq!(
        rate(50, Duration::from_secs(1)).rate.unwrap().to_string(),
        "50/1s"
    );
    assert_eq!(
        rate(5, Duration::from_millis(1500))
            .rate
            .unwrap()
            .to_string(),
        "5/1500ms"
    );
}
