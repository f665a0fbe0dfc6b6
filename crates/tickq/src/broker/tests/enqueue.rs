//! Table tests of the script-free enqueue of plain jobs (generated ids, no unique key): it
//! must leave exactly the state the enqueue script leaves.

use super::{Env, HOUR, Q, job, start};
use crate::broker::enqueue::{ENQUEUE_CHUNK, PLAIN_MIN};
use crate::broker::*;

/// Plain and scripted twins of the same jobs: `n` of each, with a mix of due times and
/// priorities.
fn twins(n: usize, past: jiff::Timestamp) -> (Vec<NewJob>, Vec<NewJob>) {
    let shape = |i: usize, job: NewJob| {
        let job = job
            .payload(serde_json::json!({ "i": i }))
            .priority((i % 3) as i32 - 1)
            .max_attempts(3)
            .meta("tag", "t");
        match i % 4 {
            0 => job.delay(HOUR),
            1 => job.at(past),
            _ => job,
        }
    };
    let plain = (0..n).map(|i| shape(i, NewJob::new(Q, "work"))).collect();
    let scripted = (0..n).map(|i| shape(i, job(&format!("s{i}")))).collect();
    (plain, scripted)
}

impl Env {
    /// The job's hash without the fields that differ between twins (times, and the id inside
    /// the envelope), plus the state it is indexed in.
    async fn comparable(&self, id: &str) -> (BTreeMap<String, String>, Vec<JobState>) {
        let mut h = self.hash(id).await;
        for f in ["created", "due"] {
            h.remove(f).unwrap_or_else(|| panic!("{id} has no {f}"));
        }
        let mut envelope: serde_json::Value = serde_json::from_str(&h["data"]).unwrap();
        envelope["id"] = serde_json::Value::Null;
        h.insert("data".into(), envelope.to_string());
        (h, self.indexes_of(id).await)
    }
}

#[tokio::test]
async fn a_plain_bulk_leaves_what_the_script_leaves() {
    let env = start().await;
    let n = PLAIN_MIN + 8;
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let (plain, scripted) = twins(n, past);
    let t0 = env.now().await;
    let a = env.broker.enqueue(plain).await.unwrap();
    let b = env.broker.enqueue(scripted).await.unwrap();
    let t1 = env.now().await;

    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a.created && !a.duplicate, "{a:?}");
        assert_eq!(a.state, b.state, "job {i}");
        assert_eq!(
            env.comparable(&a.id).await,
            env.comparable(&b.id).await,
            "job {i}"
        );
        env.assert_state(&a.id, a.state).await;
        let h = env.hash(&a.id).await;
        let created: i64 = h["created"].parse().unwrap();
        assert!((t0..=t1).contains(&created), "job {i}: created {created}");
        let due: i64 = h["due"].parse().unwrap();
        match i % 4 {
            0 => {
                // One ms over: `created` is Redis time truncated to the ms, and a delayed
                // job must never be due early (as the script path does).
                assert_eq!(due, created + 3_600_001, "job {i}");
                assert_eq!(env.score(JobState::Scheduled, &a.id).await, Some(due));
            }
            _ => assert_eq!(due, created, "job {i}"),
        }
    }
    // Pending order: priority first, then FIFO across both calls (plain ones came first).
    let ids = env
        .broker
        .ids(&env.keys, JobState::Pending, 0, 1000)
        .await
        .unwrap();
    let position = |id: &str| ids.iter().position(|x| x == id).unwrap();
    for pair in a
        .iter()
        .filter(|e| e.state == JobState::Pending)
        .collect::<Vec<_>>()
        .windows(2)
    {
        let (p, q) = (pair[0], pair[1]);
        if env.field(&p.id, "priority").await == env.field(&q.id, "priority").await {
            assert!(position(&p.id) < position(&q.id), "FIFO within a priority");
        }
    }
    assert!(env.marker_set().await, "idle workers are woken");
}

#[tokio::test]
async fn a_big_mixed_bulk_answers_every_job_in_order() {
    let env = start().await;
    let n = ENQUEUE_CHUNK * 2 + 7;
    let mut jobs: Vec<NewJob> = (0..n).map(|_| NewJob::new(Q, "work")).collect();
    jobs.insert(5, job("given"));
    jobs.insert(9, job("given")); // the same id twice: the second is not created
    jobs.push(job("u").unique_for(HOUR).unique_key("k"));
    jobs.push(NewJob::new("other", "work")); // another queue, below the plain threshold

    let answers = env.broker.enqueue(jobs).await.unwrap();

    assert_eq!(answers.len(), n + 4);
    assert_eq!(
        (answers[5].id.as_str(), answers[5].created),
        ("given", true)
    );
    assert_eq!(
        (answers[9].id.as_str(), answers[9].created),
        ("given", false)
    );
    assert!(answers[n + 2].created && answers[n + 2].id == "u");
    assert_eq!(answers[n + 3].queue, "other");
    let mut ids: Vec<&str> = answers.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n + 3, "every generated id is new");
    let counts = env.broker.counts(&env.keys).await.unwrap();
    assert_eq!(counts.states[&JobState::Pending], n as u64 + 2);
    for a in answers.iter().filter(|a| a.queue == Q && a.created) {
        env.assert_state(&a.id, JobState::Pending).await;
    }
    // Each worker claim takes them like any other job.
    let batch = env.claim("w1", 10).await;
    assert_eq!(batch.jobs.len(), 10);
}
