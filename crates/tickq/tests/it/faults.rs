//! Faults: a worker process killed with SIGKILL, Redis restarted mid-run, Redis stalled past
//! the lease, a worker process frozen (SIGSTOP) until its lease was taken over, and a frozen
//! idle worker that must not swallow wake-ups (Redis at maxmemory: `redis_full.rs`).
//!
//! Worker *processes* are this test binary started again into `child_worker_process`.

use crate::common::{CHILD_ENV, count, signal, spawn, spawn_child_worker, wait_until};
use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;
use tickq::{Client, Job, JobError, JobState, NewJob, Worker};
use tickq_testkit::TestRedis;

const JOB_MS: &str = "TICKQ_TEST_JOB_MS";
const LEASE_MS: &str = "TICKQ_TEST_LEASE_MS";

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// A worker process for the tests below: runs `work` jobs (each sleeps TICKQ_TEST_JOB_MS and
/// answers "pid <pid>"), shuts down on SIGTERM and prints its stats on the last line.
#[test]
#[ignore = "entry point of the worker processes that the fault tests start"]
fn child_worker_process() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(&url).await.unwrap();
        let job_time = env_ms(JOB_MS, 100);
        let worker = Worker::builder(&client)
            .queue("q", 1)
            .concurrency(16)
            .lease(env_ms(LEASE_MS, 1000))
            .recover_interval(Duration::from_secs(3600))
            .handler("work", move |_job: Job| async move {
                tokio::time::sleep(job_time).await;
                Ok::<_, JobError>(format!("pid {}", std::process::id()))
            })
            .build()
            .unwrap();
        worker.shutdown_handle().on_signals().unwrap();
        worker.run().await.unwrap();
        let s = worker.stats();
        println!(
            "stats completed={} stale={} abandoned={}",
            s.completed, s.stale, s.abandoned
        );
    });
}

fn local_worker(client: &Client, job_time: Duration, lease: Duration) -> Worker {
    Worker::builder(client)
        .queue("q", 1)
        .concurrency(8)
        .lease(lease)
        .recover_interval(Duration::from_millis(100))
        .handler("work", move |_job: Job| async move {
            tokio::time::sleep(job_time).await;
            Ok::<_, JobError>("local".to_owned())
        })
        .build()
        .unwrap()
}

async fn enqueue_work(client: &Client, n: usize) -> Vec<String> {
    let jobs = (0..n).map(|_| NewJob::new("q", "work")).collect();
    client
        .enqueue_bulk(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn assert_all_completed_once(client: &Client, ids: &[String]) {
    for id in ids {
        let job = client.job("q", id).await.unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:?}");
    }
    let counts = client.inspector().counts("q").await.unwrap();
    // `processed` counts acks that Redis applied: more than the jobs would mean a job was
    // completed by two holders.
    assert_eq!(counts.processed, ids.len() as u64, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_process_loses_no_job() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ids = enqueue_work(&client, 200).await;
    let mut child = spawn_child_worker(
        "faults::child_worker_process",
        &redis.url(),
        &[(JOB_MS, "200"), (LEASE_MS, "1000")],
    );
    wait_until(Duration::from_secs(30), "the child holds jobs", || async {
        count(&client, "q", JobState::Active).await >= 16
    })
    .await;
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let held = client
        .inspector()
        .jobs("q", JobState::Active, &Default::default(), None, 100)
        .await
        .unwrap()
        .jobs;
    assert!(!held.is_empty(), "the killed worker held leases");

    let killed_at = std::time::Instant::now();
    let w = spawn(local_worker(
        &client,
        Duration::from_millis(5),
        Duration::from_secs(1),
    ));
    wait_until(Duration::from_secs(30), "every job completed", || async {
        count(&client, "q", JobState::Completed).await == 200
    })
    .await;
    // Lease (1 s) + recover interval (0.1 s) + the run itself, with room for a slow machine.
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed_at.elapsed()
    );
    w.stop().await;
    assert_all_completed_once(&client, &ids).await;
    for job in held {
        let after = client.job("q", &job.id).await.unwrap();
        assert!(after.attempt >= 2, "a held job ran again: {after:?}");
        assert!(after.fence > job.fence);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_run_loses_nothing_and_workers_reconnect() {
    let mut redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ids = enqueue_work(&client, 300).await;
    let w = spawn(local_worker(
        &client,
        Duration::from_millis(10),
        Duration::from_secs(3),
    ));
    wait_until(Duration::from_secs(30), "some progress", || async {
        count(&client, "q", JobState::Completed).await >= 50
    })
    .await;
    tokio::task::block_in_place(|| redis.restart());
    // The client reconnects on its own too.
    let after = client.enqueue(NewJob::new("q", "work")).await;
    let mut ids = ids;
    match after {
        Ok(e) => ids.push(e.id),
        Err(e) => {
            // The first command after a restart may see the dropped connection; the next works.
            assert_eq!(e.kind(), tickq::ErrorKind::Unavailable, "{e}");
            ids.push(client.enqueue(NewJob::new("q", "work")).await.unwrap().id);
        }
    }
    wait_until(Duration::from_secs(60), "every job completed", || async {
        client
            .inspector()
            .counts("q")
            .await
            .is_ok_and(|c| c.states[&JobState::Completed] == ids.len() as u64)
    })
    .await;
    assert!(!w.task.is_finished(), "the worker is still running");
    w.stop().await;
    assert_all_completed_once(&client, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalled_past_the_lease_makes_workers_abandon_and_nothing_completes_twice() {
    let mut redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let ids = enqueue_work(&client, 16).await;
    let w = spawn(local_worker(
        &client,
        Duration::from_millis(1500),
        Duration::from_secs(1),
    ));
    wait_until(Duration::from_secs(30), "8 running", || async {
        count(&client, "q", JobState::Active).await == 8
    })
    .await;
    tokio::task::block_in_place(|| {
        redis.pause();
        std::thread::sleep(Duration::from_millis(2500));
        redis.resume();
    });
    wait_until(Duration::from_secs(60), "every job completed", || async {
        client
            .inspector()
            .counts("q")
            .await
            .is_ok_and(|c| c.states[&JobState::Completed] == 16)
    })
    .await;
    let stats = w.stop().await;
    assert!(
        stats.abandoned >= 1,
        "jobs whose lease could not be renewed were abandoned: {stats:?}"
    );
    assert_all_completed_once(&client, &ids).await;
    let rerun = client
        .inspector()
        .jobs("q", JobState::Completed, &Default::default(), None, 100)
        .await
        .unwrap()
        .jobs;
    assert!(
        rerun.iter().any(|j| j.attempt >= 2),
        "abandoned jobs ran again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_cannot_complete_a_job_it_lost() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let id = enqueue_work(&client, 1).await.remove(0);
    let mut zombie = spawn_child_worker(
        "faults::child_worker_process",
        &redis.url(),
        &[(JOB_MS, "1500"), (LEASE_MS, "1000")],
    );
    wait_until(
        Duration::from_secs(30),
        "the zombie-to-be holds the job",
        || async { count(&client, "q", JobState::Active).await == 1 },
    )
    .await;
    let first = client.job("q", &id).await.unwrap();
    signal(&zombie, libc::SIGSTOP);

    let w = spawn(local_worker(
        &client,
        Duration::from_millis(1),
        Duration::from_secs(1),
    ));
    wait_until(
        Duration::from_secs(30),
        "taken over and completed",
        || async { count(&client, "q", JobState::Completed).await == 1 },
    )
    .await;
    w.stop().await;
    let done = client.job("q", &id).await.unwrap();
    assert_eq!(done.result.as_deref(), Some("local"));
    assert!(done.fence > first.fence);

    // Wake the zombie: its handler finishes and it tries to report, or it notices first that
    // its lease is gone. Either way nothing it does may change the job.
    signal(&zombie, libc::SIGCONT);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal(&zombie, libc::SIGTERM);
    let status = tokio::task::block_in_place(|| zombie.wait()).unwrap();
    assert!(status.success());
    let mut out = String::new();
    zombie
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let stats = out
        .lines()
        .find_map(|l| l.find("stats completed=").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("child printed no stats: {out:?}"));
    let field = |name: &str| -> u64 {
        let f = stats
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")));
        f.unwrap().parse().unwrap()
    };
    assert_eq!(field("completed"), 0, "{stats}");
    assert!(
        field("stale") + field("abandoned") >= 1,
        "the zombie noticed: {stats}"
    );
    let after = client.job("q", &id).await.unwrap();
    assert_eq!(
        (after.state, after.result, after.fence),
        (JobState::Completed, done.result, done.fence)
    );
    assert_eq!(client.inspector().counts("q").await.unwrap().processed, 1);
    let seen: HashSet<_> = [first.worker, done.worker].into_iter().collect();
    assert_eq!(seen.len(), 2, "two different holders");
}

/// A frozen (or cut off) idle worker's blocked read must not take a wake-up from the others:
/// every idle worker sees it, so a live one starts the new job at once instead of at its idle
/// timeout (30 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_idle_worker_does_not_swallow_wake_ups() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let blocked = || async {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(
                &mut redis::Client::open(redis.url())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The worker to be frozen blocks first: a wake-up for one reader would go to it.
    let mut frozen = spawn_child_worker("faults::child_worker_process", &redis.url(), &[]);
    wait_until(
        Duration::from_secs(30),
        "the child worker is idle",
        || async { blocked().await >= 1 },
    )
    .await;
    signal(&frozen, libc::SIGSTOP);
    let live = spawn(local_worker(
        &client,
        Duration::from_millis(1),
        Duration::from_secs(5),
    ));
    wait_until(
        Duration::from_secs(30),
        "the live worker is idle",
        || async { blocked().await >= 2 },
    )
    .await;

    let started = std::time::Instant::now();
    let ids = enqueue_work(&client, 1).await;
    wait_until(Duration::from_secs(60), "the job completed", || async {
        count(&client, "q", JobState::Completed).await == 1
    })
    .await;
    let took = started.elapsed();
    live.stop().await;
    signal(&frozen, libc::SIGCONT);
    signal(&frozen, libc::SIGTERM);
    assert!(
        tokio::task::block_in_place(|| frozen.wait())
            .unwrap()
            .success()
    );
    assert_eq!(
        client.job("q", &ids[0]).await.unwrap().result.as_deref(),
        Some("local")
    );
    assert!(
        took < Duration::from_secs(10),
        "the live worker started the job after {took:?}: it was not woken, so it waited for \
         its idle timeout"
    );
}
