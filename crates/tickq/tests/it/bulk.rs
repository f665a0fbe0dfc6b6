//! `enqueue_bulk` at scale: a million jobs in one call go in exactly once, and a call cut off
//! part way says what went in and can be sent again without creating any job twice.

use crate::common::count;
use std::collections::HashSet;
use std::time::Duration;
use tickq::{Client, JobState, NewJob};
use tickq_testkit::TestRedis;

fn jobs(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob::new("q", "noop").payload(serde_json::json!({ "i": i })))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_jobs_in_one_bulk_call_each_go_in_once() {
    const N: usize = 1_000_000;
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    // Nothing but the size of the call could make it fail here: before, the replies at the
    // back of a million jobs in flight waited past the response timeout.
    let answers = client.enqueue_bulk(jobs(N)).await.unwrap();
    assert_eq!(answers.len(), N);
    assert!(
        answers
            .iter()
            .all(|a| a.created && a.state == JobState::Pending)
    );
    let ids: HashSet<&str> = answers.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), N, "every job has its own id");
    assert_eq!(count(&client, "q", JobState::Pending).await, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_call_cut_off_part_way_lists_what_went_in_and_a_retry_creates_no_duplicate() {
    cut_off_and_retried(1).await;
}

/// The same on a sharded queue: jobs handed back keep their shard, so a retry looks for each
/// where it may have gone in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_bulk_call_cut_off_part_way_is_retried_without_duplicates() {
    cut_off_and_retried(4).await;
}

async fn cut_off_and_retried(shards: u32) {
    // The cut comes once 10,000 are stored: the window of 16 chunks of 1,000 is then in flight
    // and more than half the call is still to be sent, at any speed of the machine.
    const N: usize = 50_000;
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    if shards > 1 {
        client.shard_queue("q", shards).await.unwrap();
    }
    let watcher = Client::connect(&redis.url()).await.unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.enqueue_bulk(jobs(N)).await }
    });
    // Cut every client's connection once some jobs are in and most are still to be sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(&watcher, "q", JobState::Pending).await < 10_000 {
        assert!(tokio::time::Instant::now() < deadline, "no job went in");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut admin = redis.conn().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1);
    let error = call
        .await
        .unwrap()
        .expect_err("the call was cut off part way");
    let partial = error
        .into_partial_enqueue()
        .expect("a failed bulk call says what went in");

    // Every job is accounted for once: confirmed, or handed back with its id.
    let mut seen: Vec<usize> = partial.enqueued.iter().map(|(i, _)| *i).collect();
    seen.extend(partial.unconfirmed.iter().map(|(i, _)| *i));
    seen.sort_unstable();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
    assert!(
        partial
            .enqueued
            .iter()
            .all(|(_, e)| e.created && e.queue == "q")
    );
    assert!(!partial.unconfirmed.is_empty(), "the cut came part way");
    // The watcher's connection was cut too: count with a new one.
    let watcher = Client::connect(&redis.url()).await.unwrap();
    let stored = count(&watcher, "q", JobState::Pending).await as usize;
    assert!(stored >= partial.enqueued.len());
    assert!(stored < N, "the cut came after every job was stored");
    // Jobs whose chunk was in flight may have gone in without an answer: the retry must
    // find them there, not create them again.
    let in_doubt = stored - partial.enqueued.len();

    // Retried as a caller would: the handed-back jobs, again until none is left (the first
    // request on the cut connection may fail once more while it reconnects).
    let mut answered: Vec<Option<tickq::Enqueued>> = vec![None; N];
    for (i, e) in partial.enqueued {
        answered[i] = Some(e);
    }
    let mut left = partial.unconfirmed;
    let mut existed = 0;
    for _round in 0..3 {
        assert!(left.iter().all(|(_, job)| job.assigned_id().is_some()));
        let (index, again): (Vec<usize>, Vec<NewJob>) = left.into_iter().unzip();
        let ids: Vec<String> = again
            .iter()
            .map(|job| job.assigned_id().unwrap().to_owned())
            .collect();
        let (done, rest) = match client.enqueue_bulk(again).await {
            Ok(answers) => (answers.into_iter().enumerate().collect(), Vec::new()),
            Err(e) => {
                let partial = e.into_partial_enqueue().expect("a failed call says why");
                (partial.enqueued, partial.unconfirmed)
            }
        };
        for (k, answer) in done {
            assert_eq!(answer.id, ids[k], "the retry keeps the job's id");
            assert_eq!(answer.queue, "q", "answers name the queue the caller gave");
            existed += usize::from(!answer.created);
            answered[index[k]] = Some(answer);
        }
        left = rest.into_iter().map(|(k, job)| (index[k], job)).collect();
        if left.is_empty() {
            break;
        }
    }
    assert!(left.is_empty(), "the retries went through");
    assert!(answered.iter().all(Option::is_some), "every job answered");
    assert!(existed >= in_doubt, "the retry found the jobs in doubt");
    assert_eq!(
        count(&watcher, "q", JobState::Pending).await as usize,
        N,
        "each job went in exactly once"
    );
}
