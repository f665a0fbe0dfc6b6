//! A database of a few hundred thousand jobs: no admin call fails only because one reply took
//! longer than a client's response timeout. The calls run on a client with redis-rs' own
//! default of 500 ms (tickq's is 5 s), so any admin step whose single reply grows with the
//! queue (a purge in one script, a page that reads the whole index) fails here.

use std::time::Duration;
use tickq::{Client, ConnectOptions, JobAction, JobFilter, JobState, NewJob};
use tickq_testkit::TestRedis;

const JOBS: u64 = 300_000;
const RARE: u64 = 100;

#[tokio::test]
async fn admin_calls_on_300k_jobs_each_answer_within_500_ms() {
    let redis = TestRedis::start();
    let filler = Client::connect(&redis.url()).await.unwrap();
    // The rare jobs are spread through the queue, so finding them walks all of it.
    let every = JOBS / RARE;
    for chunk in 0..JOBS / 50_000 {
        let jobs = (chunk * 50_000..(chunk + 1) * 50_000)
            .map(|i| {
                let kind = if i % every == every / 2 {
                    "rare"
                } else {
                    "common"
                };
                NewJob::new("big", kind).payload(serde_json::json!({ "i": i }))
            })
            .collect();
        filler.enqueue_bulk(jobs).await.unwrap();
    }

    let client = Client::connect_with(
        &redis.url(),
        &ConnectOptions::new().response_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let inspector = client.inspector();
    let pending =
        |stats: &tickq::QueueCounts| stats.states.get(&JobState::Pending).copied().unwrap_or(0);
    assert_eq!(pending(&inspector.counts("big").await.unwrap()), JOBS);
    inspector.stats().await.unwrap();
    let report = client.doctor().run().await.unwrap();
    assert!(!report.findings.is_empty());

    // The first page, and a payload search from the top down to a job in the middle.
    let page = inspector
        .jobs("big", JobState::Pending, &JobFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1000);
    let wanted = format!("\"i\":{}", JOBS / 2 + 1);
    let filter = JobFilter {
        payload: Some(wanted.clone()),
        ..JobFilter::default()
    };
    let mut cursor = None;
    let found = loop {
        let page = inspector
            .jobs("big", JobState::Pending, &filter, cursor.as_deref(), 50)
            .await
            .unwrap();
        if let Some(job) = page.jobs.first() {
            break job.payload.clone();
        }
        cursor = Some(page.next_cursor.expect("the job is in the queue"));
    };
    assert_eq!(found["i"], JOBS / 2 + 1);

    // A bulk action over the whole queue that matches a few jobs, then a purge of the rest.
    let rare = JobFilter {
        kind: Some("rare".to_owned()),
        ..JobFilter::default()
    };
    let deleted = inspector
        .bulk("big", JobState::Pending, &rare, JobAction::Delete, false)
        .await
        .unwrap();
    assert_eq!((deleted.matched, deleted.acted), (RARE, RARE));
    let purged = inspector.purge("big", JobState::Pending).await.unwrap();
    assert_eq!(purged.purged, JOBS - RARE);
    assert_eq!(pending(&inspector.counts("big").await.unwrap()), 0);
}
