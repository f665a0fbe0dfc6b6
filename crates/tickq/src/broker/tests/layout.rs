//! Where a job's fields live (layout 5, lua/prelude.lua "Job records"): a plain waiting job is
//! its payload field and its list entry, nothing else; its notes and the sparse per-queue
//! hashes get an entry only while it has a rare fact, and lose it when the fact goes.

use super::*;
use crate::broker::enqueue::PLAIN_MIN;

/// Every key of the queue that mentions job `id` (its notes key) or holds an entry of it (the
/// per-queue hashes), as "key" or "hash[id]".
async fn homes_of(env: &Env, id: &str) -> Vec<String> {
    let mut conn = env.conn.clone();
    let mut out = Vec::new();
    let notes: bool = conn.exists(env.keys.record(id)).await.unwrap();
    if notes {
        out.push("notes".to_owned());
    }
    for (name, hash) in [
        ("jobs", &env.keys.jobs),
        ("attempts", &env.keys.attempts),
        ("groups", &env.keys.groups),
        ("dues", &env.keys.dues),
        ("ends", &env.keys.ends),
        ("running", &env.keys.running),
        ("acked", &env.keys.acked),
    ] {
        let there: bool = conn.hexists(hash, id).await.unwrap();
        if there {
            out.push(name.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn a_plain_waiting_job_has_no_key_of_its_own() {
    let env = start().await;
    env.enqueue(job("a")).await;
    // A bulk big enough for the transaction path (broker/enqueue.rs), which writes the
    // payloads itself.
    let bulk: Vec<NewJob> = (0..PLAIN_MIN)
        .map(|i| job(&format!("b{i}")).priority(-(i as i32 % 3)))
        .collect();
    env.broker.enqueue(bulk).await.unwrap();

    for id in ["a", "b0", "b1", "b31"] {
        assert_eq!(homes_of(&env, id).await, ["jobs"], "{id}");
        env.assert_state(id, JobState::Pending).await;
    }
    // The queue's keys: the payloads, the lists and their set, and what every enqueue
    // writes (wake stream, history); no key names a job.
    let keys: Vec<String> = env.conn.clone().keys("tickq:*").await.unwrap();
    assert!(
        keys.iter()
            .all(|k| !k.starts_with(&env.keys.job_prefix) && !k.ends_with(":a")),
        "{keys:?}"
    );
    // Claimed and acked: still no notes, no sparse entry.
    let fence = env.claim_next("a").await;
    assert_eq!(homes_of(&env, "a").await, ["jobs", "running"]);
    env.broker
        .ack(&env.keys, &KEEP, &[("a".into(), fence, String::new())])
        .await
        .unwrap();
    assert_eq!(homes_of(&env, "a").await, ["jobs", "acked"]);
    env.assert_state("a", JobState::Completed).await;
}

#[tokio::test]
async fn notes_and_sparse_entries_come_and_go_with_rare_facts() {
    let env = start().await;
    // Delayed: notes hold its state until it is due.
    env.enqueue(job("a").delay(Duration::from_secs(60))).await;
    assert_eq!(homes_of(&env, "a").await, ["notes", "jobs"]);
    env.assert_state("a", JobState::Scheduled).await;
    env.set_score(JobState::Scheduled, "a", 0).await;
    let fence = env.claim_next("a").await;
    // Promoted: no state stored (pending), so no notes; running now.
    assert_eq!(homes_of(&env, "a").await, ["jobs", "running"]);

    // A failed attempt: notes (state retry, error, the run's facts), its attempt count and
    // its new due time apart.
    let out = env
        .broker
        .fail(
            &env.keys,
            &KEEP,
            "a",
            fence,
            "boom",
            FailMode::Retry(Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Retry);
    assert_eq!(
        homes_of(&env, "a").await,
        ["notes", "jobs", "attempts", "dues"]
    );
    let h = env.hash("a").await;
    assert_eq!((h["state"].as_str(), h["attempt"].as_str()), ("retry", "1"));
    assert_eq!(h["error"], "boom");
    let due = env.num("a", "due").await;

    // Claimed again: the attempt count moves into the run's entry; the due time stays (the
    // worker is told when the job was due).
    let batch = env.claim("w1", 1).await;
    assert_eq!((batch.jobs[0].attempt, batch.jobs[0].due_ms), (2, due));
    assert_eq!(
        homes_of(&env, "a").await,
        ["notes", "jobs", "dues", "running"]
    );
    // Completed, then deleted: nothing is left in any home.
    let fence = batch.jobs[0].fence;
    env.broker
        .ack(&env.keys, &KEEP, &[("a".into(), fence, String::new())])
        .await
        .unwrap();
    env.broker.delete(&env.keys, "a").await.unwrap();
    assert_eq!(homes_of(&env, "a").await, Vec::<String>::new());
    assert_eq!(
        record::count(&mut env.conn.clone(), &env.keys)
            .await
            .unwrap(),
        0
    );

    // A unique key: in `ends`, carried by the run, gone with the job.
    env.enqueue(job("u").unique_key("k").unique_for(Duration::from_secs(60)))
        .await;
    assert_eq!(homes_of(&env, "u").await, ["jobs", "ends"]);
    let fence = env.claim_next("u").await;
    env.broker
        .ack(&env.keys, &KEEP, &[("u".into(), fence, "r".into())])
        .await
        .unwrap();
    // The result is a note.
    assert_eq!(
        homes_of(&env, "u").await,
        ["notes", "jobs", "ends", "acked"]
    );
    let again = env
        .enqueue(
            job("u2")
                .unique_key("k")
                .unique_for(Duration::from_secs(60)),
        )
        .await;
    assert!(again.created, "the unique key was freed by the ack");
}
