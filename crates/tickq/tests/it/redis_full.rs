//! Redis at `maxmemory` with `noeviction`: new jobs are refused with a typed error, and every job
//! accepted before the limit still runs, because claim, ack, renew and the janitor run at
//! maxmemory.

use crate::common::{spawn, wait_until};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq::{Client, Error, ErrorKind, Job, JobError, NewJob, Worker};
use tickq_testkit::TestRedis;

/// Jobs of ~4 KiB: 32 MiB fill in a few thousand jobs.
const PAYLOAD: usize = 4096;
const BATCH: usize = 100;

fn full_redis() -> TestRedis {
    TestRedis::builder()
        .appendonly(false)
        .extra_args(["--maxmemory", "32mb", "--maxmemory-policy", "noeviction"])
        .start()
}

async fn memory(redis: &TestRedis) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (field("used_memory"), field("maxmemory"))
}

/// Enqueue batches (each one transaction: all or nothing) until one is refused; answers the
/// ids accepted and the refusal.
async fn fill(client: &Client) -> (Vec<String>, Error) {
    let payload = serde_json::Value::String("x".repeat(PAYLOAD));
    let mut accepted = Vec::new();
    loop {
        let jobs = (0..BATCH)
            .map(|_| NewJob::new("q", "work").payload(payload.clone()))
            .collect();
        match client.enqueue_bulk(jobs).await {
            Ok(done) => accepted.extend(done.into_iter().map(|e| e.id)),
            Err(e) => return (accepted, e),
        }
        assert!(accepted.len() < 50_000, "32 MiB never filled up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_maxmemory_new_jobs_are_refused_and_every_accepted_job_still_runs() {
    let redis = full_redis();
    // Up to maxmemory itself: only Redis' own refusal stops this producer.
    let greedy = Client::connect(&redis.url())
        .await
        .unwrap()
        .with_memory_high_water(1.0)
        .unwrap();
    let (accepted, refusal) = fill(&greedy).await;
    assert_eq!(refusal.kind(), ErrorKind::RedisFull, "{refusal}");
    assert!(
        refusal.to_string().starts_with("Redis is full"),
        "{refusal}"
    );
    let (used, max) = memory(&redis).await;
    // At the refusal Redis was over maxmemory; the refused transaction's queued commands are
    // freed since, so allow a little below.
    assert!(
        used as f64 > max as f64 * 0.95,
        "Redis refused far below maxmemory: {used} of {max}"
    );
    assert!(accepted.len() > 1000, "only {} jobs fit", accepted.len());

    // A producer with the default mark (90%) is refused by the mark, before any write.
    let client = Client::connect(&redis.url()).await.unwrap();
    let err = client.enqueue(NewJob::new("q", "work")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RedisFull, "{err}");
    assert!(err.message().contains("high-water mark"), "{err}");

    // The worker starts with Redis over maxmemory: claims, acks and renewals must still work.
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = runs.clone();
    let worker = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(8)
        .lease(Duration::from_secs(2))
        .handler("work", move |job: Job| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(job.id().to_owned()).or_default() += 1;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let running = spawn(worker);
    let n = accepted.len() as u64;
    wait_until(
        Duration::from_secs(60),
        "every accepted job ran",
        || async { client.inspector().counts("q").await.unwrap().processed >= n },
    )
    .await;
    // Once drained, the janitor trims the completed jobs (memory is above the mark) and new
    // jobs are accepted again: the queue recovers by itself.
    wait_until(
        Duration::from_secs(30),
        "enqueues accepted again",
        || async { client.enqueue(NewJob::new("q", "later")).await.is_ok() },
    )
    .await;
    running.stop().await;

    let runs = runs.lock().unwrap().clone();
    for id in &accepted {
        assert_eq!(
            runs.get(id),
            Some(&1),
            "job {id} ran {:?} times",
            runs.get(id)
        );
    }
    let counts = client.inspector().counts("q").await.unwrap();
    assert_eq!(counts.processed, n, "{counts:?}");
    eprintln!(
        "maxmemory 32mb: {n} jobs accepted before the refusal at {used} of {max} bytes, all \
         ran once"
    );
}
