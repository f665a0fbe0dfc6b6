//! tickq through Redis Sentinel, on real processes: a primary, a replica and a sentinel. The
//! client and the worker find the master through the sentinel and follow a failover.

mod common;

use common::{count, spawn, wait_until};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tickq::{Client, Job, JobError, JobState, NewJob, Worker};
use tickq_testkit::{TestRedis, TestSentinel};

const LIMIT: Duration = Duration::from_secs(30);

fn worker(client: &Client, queue: &str, work: Duration) -> Worker {
    Worker::builder(client)
        .concurrency(2)
        .queue(queue, 1)
        .handler("work", move |_job: Job| async move {
            tokio::time::sleep(work).await;
            Ok::<_, JobError>(())
        })
        .build()
        .unwrap()
}

fn role(node: &TestRedis) -> String {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut node.sync_conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("role:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinel_url_finds_the_master_and_a_worker_runs_its_jobs() {
    let set = TestSentinel::start();
    let client = Client::connect(&set.url()).await.unwrap();
    let bulk = (0..20).map(|i| NewJob::new("q", "work").payload(i.into()));
    client.enqueue_bulk(bulk.collect()).await.unwrap();
    let worker = spawn(worker(&client, "q", Duration::ZERO));
    wait_until(LIMIT, "every job completed", || async {
        count(&client, "q", JobState::Completed).await == 20
    })
    .await;
    worker.stop().await;
    // The jobs are on the primary, not on the replica's own writes.
    let direct = Client::connect(&set.master().url()).await.unwrap();
    assert_eq!(count(&direct, "q", JobState::Completed).await, 20);
}

/// A failover in the middle of a run. Jobs enqueued (or finished) on the old primary in the
/// seconds between the replica's promotion and the old primary's demotion are lost with it:
/// replication is asynchronous and Sentinel demotes the old primary only about 8 s after the
/// promotion. The test therefore requires nothing of those; it requires that everything
/// enqueued once the failover is over completes, without restarting the client or the worker.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_failover_mid_run_is_followed_by_client_and_worker() {
    let mut set = TestSentinel::start();
    let old_master_port = set.master().port();
    let client = Client::connect(&set.url()).await.unwrap();
    let before = (0..200).map(|i| NewJob::new("q", "work").id(format!("before-{i}")));
    client.enqueue_bulk(before.collect()).await.unwrap();
    // A client of its own, so that the worker's connections have to follow by themselves.
    let worker_client = Client::connect(&set.url()).await.unwrap();
    let worker = spawn(worker(&worker_client, "q", Duration::from_millis(20)));
    wait_until(LIMIT, "the run is under way", || async {
        count(&client, "q", JobState::Completed).await >= 20
    })
    .await;

    // Keep enqueueing through the failover: the client must not be wedged on the old master.
    let stop = Arc::new(AtomicBool::new(false));
    let enqueued_during = Arc::new(AtomicU64::new(0));
    let enqueuer = tokio::spawn({
        let (client, stop, enqueued) = (client.clone(), stop.clone(), enqueued_during.clone());
        async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // Errors are expected while the master changes hands.
                if client
                    .enqueue(NewJob::new("q", "work").id(format!("during-{i}")))
                    .await
                    .is_ok()
                {
                    enqueued.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let set = tokio::task::spawn_blocking(move || {
        set.failover();
        set
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    enqueuer.await.unwrap();
    assert_ne!(set.master().port(), old_master_port);
    assert_eq!(role(set.master()), "master");
    assert_eq!(role(set.replica()), "slave");
    assert!(enqueued_during.load(Ordering::Relaxed) > 0);

    // The same client and worker, on their own, now write to and run jobs on the new master.
    let after = (0..50).map(|i| NewJob::new("q", "work").id(format!("after-{i}")));
    client.enqueue_bulk(after.collect()).await.unwrap();
    for i in 0..50 {
        client
            .enqueue(NewJob::new("q", "work").id(format!("after-one-{i}")))
            .await
            .unwrap();
    }
    let direct = Client::connect(&set.master().url()).await.unwrap();
    let inspector = direct.inspector();
    wait_until(
        LIMIT,
        "every job enqueued after the failover completed",
        || async {
            for prefix in ["after", "after-one"] {
                for i in 0..50 {
                    let job = inspector
                        .job_in("q", &format!("{prefix}-{i}"))
                        .await
                        .unwrap();
                    if job.state != JobState::Completed {
                        return false;
                    }
                }
            }
            true
        },
    )
    .await;
    assert!(!worker.task.is_finished(), "the worker stopped on its own");
    worker.stop().await;
}

#[tokio::test]
async fn sentinel_url_with_an_unknown_master_name_is_unavailable() {
    let set = TestSentinel::start();
    let url = format!(
        "redis-sentinel://127.0.0.1:{}/nosuchmaster",
        set.sentinel_port()
    );
    let err = Client::connect(&url).await.err().expect("no such master");
    assert_eq!(err.kind(), tickq::ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no master by that name"), "{err}");
}

#[tokio::test]
async fn sentinel_url_with_no_sentinel_behind_it_is_unavailable() {
    let err = Client::connect("redis-sentinel://127.0.0.1:1/mymaster")
        .await
        .err()
        .expect("nothing listens there");
    assert_eq!(err.kind(), tickq::ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("sentinels"), "{err}");
}
