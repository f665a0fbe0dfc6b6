//! Table tests of unique jobs: the reservation the enqueue script takes, and every way a job's
//! end frees it.

use super::{Env, HOUR, KEEP, Q, job, start};
use crate::broker::*;
use redis::AsyncCommands;

const TTL: Duration = Duration::from_secs(3600);

fn unique(id: &str) -> NewJob {
    job(id).unique_for(TTL).unique_key("k")
}

impl Env {
    /// The job id the reservation of unique key "k" holds, if any.
    async fn holder(&self) -> Option<String> {
        self.conn
            .clone()
            .get(self.keys.unique("key:k"))
            .await
            .unwrap()
    }

    async fn enqueue_answer(&self, job: NewJob) -> Enqueued {
        self.broker.enqueue(vec![job]).await.unwrap().pop().unwrap()
    }
}

#[tokio::test]
async fn a_unique_job_reserves_its_key_for_the_ttl() {
    let env = start().await;
    env.enqueue(unique("a")).await;
    assert_eq!(env.holder().await.as_deref(), Some("a"));
    let pttl: i64 = env
        .conn
        .clone()
        .pttl(env.keys.unique("key:k"))
        .await
        .unwrap();
    assert!(pttl > 3_590_000 && pttl <= 3_600_000, "{pttl}");
    assert_eq!(
        env.field("a", "unique").await.as_deref(),
        Some(env.keys.unique("key:k").as_str())
    );
}

#[tokio::test]
async fn a_duplicate_answers_the_holder_and_creates_nothing() {
    let env = start().await;
    env.enqueue(unique("a")).await;
    // Nothing may change.
    let snapshot = || env.snapshot();
    let before = snapshot().await;
    for _ in 0..2 {
        let answer = env.enqueue_answer(unique("b")).await;
        assert_eq!(
            answer,
            Enqueued {
                id: "a".into(),
                queue: Q.into(),
                state: JobState::Pending,
                created: false,
                duplicate: true,
            }
        );
    }
    env.assert_gone("b").await;
    assert_eq!(snapshot().await, before, "a duplicate changed nothing");

    // The holder's state is answered as it is now.
    env.claim_next("a").await;
    let answer = env.enqueue_answer(unique("c")).await;
    assert_eq!((answer.id.as_str(), answer.state), ("a", JobState::Active));
}

#[tokio::test]
async fn one_bulk_call_creates_one_job_per_unique_key() {
    let env = start().await;
    let answers = env
        .broker
        .enqueue(vec![
            unique("a"),
            unique("b"),
            job("c").unique_for(TTL).unique_key("other"),
        ])
        .await
        .unwrap();
    let created: Vec<(&str, bool, bool)> = answers
        .iter()
        .map(|a| (a.id.as_str(), a.created, a.duplicate))
        .collect();
    assert_eq!(
        created,
        [("a", true, false), ("a", false, true), ("c", true, false)]
    );
}

#[tokio::test]
async fn the_derived_key_is_the_kind_and_the_payload_whatever_the_key_order() {
    let env = start().await;
    let a: serde_json::Value = serde_json::from_str(r#"{"x": 1, "y": {"b": 2, "a": 1}}"#).unwrap();
    let b: serde_json::Value = serde_json::from_str(r#"{"y": {"a": 1, "b": 2}, "x": 1}"#).unwrap();
    let c = serde_json::json!({"x": 2});
    env.enqueue(job("a").payload(a.clone()).unique_for(TTL))
        .await;
    let dup = env
        .enqueue_answer(job("b").payload(b).unique_for(TTL))
        .await;
    assert!(dup.duplicate && dup.id == "a", "{dup:?}");
    // Another payload, or another kind with the same payload, is another key.
    env.enqueue(job("c").payload(c).unique_for(TTL)).await;
    env.enqueue(NewJob::new(Q, "other").id("d").payload(a).unique_for(TTL))
        .await;
}

#[tokio::test]
async fn a_reservation_ends_with_its_ttl() {
    let env = start().await;
    env.enqueue(
        job("a")
            .unique_for(Duration::from_millis(50))
            .unique_key("k"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    env.enqueue(unique("b")).await;
    assert_eq!(env.holder().await.as_deref(), Some("b"));
    // The first job's end must not free the newer job's reservation.
    let fence = env.claim_next("a").await;
    let acks = [("a".to_owned(), fence, String::new())];
    env.broker.ack(&env.keys, &KEEP, &acks).await.unwrap();
    assert_eq!(env.holder().await.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_reservation_whose_job_vanished_is_taken_over() {
    let env = start().await;
    let _: () = env
        .conn
        .clone()
        .set(env.keys.unique("key:k"), "ghost")
        .await
        .unwrap();
    env.enqueue(unique("a")).await;
    assert_eq!(env.holder().await.as_deref(), Some("a"));
}

#[tokio::test]
async fn a_unique_key_needs_a_ttl_and_a_sane_key() {
    let env = start().await;
    for bad in [
        job("a").unique_key("k"),
        job("a").unique_for(Duration::ZERO),
        job("a").unique_for(TTL).unique_key(""),
        job("a").unique_for(TTL).unique_key("x".repeat(300)),
    ] {
        let err = env.broker.enqueue(vec![bad]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }
}

/// Every way a job ends frees its key; a retry does not.
#[tokio::test]
async fn the_end_of_a_job_frees_its_key_and_a_retry_keeps_it() {
    /// How the job ends (or, for Retry, does not).
    #[derive(Debug, Clone, Copy)]
    enum End {
        Ack,
        AckNotKept,
        Kill,
        FailForGood,
        Retry,
        CancelWaiting,
        CancelRunning,
        Delete,
        KillByHand,
        Purge,
        RecoverToDead,
    }
    use End::*;
    let every_end = [
        Ack,
        AckNotKept,
        Kill,
        FailForGood,
        Retry,
        CancelWaiting,
        CancelRunning,
        Delete,
        KillByHand,
        Purge,
        RecoverToDead,
    ];
    for end in every_end {
        let env = start().await;
        let (b, k) = (&env.broker, &env.keys);
        env.enqueue(unique("a").max_attempts(1)).await;
        let env = &env;
        let fail = |mode| async move {
            let fence = env.claim_next("a").await;
            env.broker
                .fail(&env.keys, &KEEP, "a", fence, "x", mode)
                .await
                .unwrap()
        };
        match end {
            Ack | AckNotKept => {
                let fence = env.claim_next("a").await;
                let keep = match end {
                    Ack => KEEP,
                    _ => Retention {
                        completed_max: 0,
                        ..KEEP
                    },
                };
                let acks = [("a".to_owned(), fence, String::new())];
                assert_eq!(b.ack(k, &keep, &acks).await.unwrap().acked, 1);
            }
            Kill => assert_eq!(fail(FailMode::Kill).await, FailOutcome::Dead),
            FailForGood => assert_eq!(fail(FailMode::Retry(HOUR)).await, FailOutcome::Dead),
            Retry => {
                env.set_field("a", "max", 5).await;
                assert_eq!(fail(FailMode::Retry(HOUR)).await, FailOutcome::Retry);
            }
            CancelWaiting => {
                b.cancel(k, &KEEP, "a").await.unwrap();
            }
            CancelRunning => assert_eq!(fail(FailMode::Cancel).await, FailOutcome::Cancelled),
            Delete => {
                b.delete(k, "a").await.unwrap();
            }
            KillByHand => {
                b.kill(k, &KEEP, "a").await.unwrap();
            }
            Purge => {
                assert_eq!(b.purge_batch(k, JobState::Pending, 10).await.unwrap(), 1);
            }
            RecoverToDead => {
                env.claim_next("a").await;
                env.expire_lease("a").await;
                let recovered = b.recover(k, &KEEP, 10).await.unwrap();
                assert_eq!(recovered.to_dead, 1);
            }
        }
        let expected = match end {
            Retry => Some("a"),
            _ => None,
        };
        assert_eq!(env.holder().await.as_deref(), expected, "{end:?}");
        let again = env.enqueue_answer(unique("b")).await;
        match end {
            Retry => {
                assert!(again.duplicate, "{end:?}: a retry freed the key");
                assert_eq!(env.holder().await.as_deref(), Some("a"));
            }
            _ => {
                assert!(again.created, "{end:?} did not free the key: {again:?}");
                assert_eq!(env.holder().await.as_deref(), Some("b"), "{end:?}");
            }
        }
    }
}
