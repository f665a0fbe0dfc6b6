//! tickq through Redis Sentinel, on real processes: a primary, a replica and a sentinel. The
//! client and the worker find the master through the sentinel and follow a failover.

use crate::common::{count, spawn, wait_until};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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

/// TLS to the sentinels and the servers they name (`rediss-sentinel://`), with a private CA:
/// jobs run, a failover is followed, and a wrong CA is refused with a certificate message.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_over_tls_with_a_private_ca_runs_jobs_and_follows_a_failover() {
    use tickq::{ConnectOptions, ErrorKind, TlsFiles};
    let mut set = TestSentinel::start_tls();
    let url = set.url();
    assert!(url.starts_with("rediss-sentinel://"), "{url}");
    let ca = set.certs().unwrap().ca();
    let options = ConnectOptions::new().tls(TlsFiles::new().ca_file(&ca));
    let client = Client::connect_with(&url, &options).await.unwrap();
    let bulk = (0..10).map(|i| NewJob::new("q", "work").payload(i.into()));
    client.enqueue_bulk(bulk.collect()).await.unwrap();
    let worker = spawn(worker(&client, "q", Duration::ZERO));
    wait_until(LIMIT, "every job completed", || async {
        count(&client, "q", JobState::Completed).await == 10
    })
    .await;
    set.failover();
    wait_until(LIMIT, "an enqueue after the failover completes", || async {
        let Ok(job) = client.enqueue(NewJob::new("q", "work")).await else {
            return false;
        };
        wait_until(LIMIT, "the job after the failover completed", || async {
            client
                .job("q", &job.id)
                .await
                .is_ok_and(|j| j.state == JobState::Completed)
        })
        .await;
        true
    })
    .await;
    worker.stop().await;

    let other = set.certs().unwrap().other_ca();
    let untrusted = ConnectOptions::new().tls(TlsFiles::new().ca_file(&other));
    let err = Client::connect_with(&url, &untrusted).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
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

/// What a forced failover under load did, for the failover tests below.
struct FailoverRun {
    /// Runs per job id.
    runs: HashMap<String, u32>,
    /// The old primary's last write while it was still a primary, in ms after `+switch-master`
    /// (negative: before it).
    last_old_write_after_switch_ms: Option<i128>,
    stats: tickq::WorkerStats,
}

const JOBS: usize = 1000;
const CONCURRENCY: usize = 8;

/// 1,000 jobs of 30 ms on a worker of concurrency 8, with a `SENTINEL FAILOVER` once a quarter
/// of them have completed. Every job's runs are counted in the handler, outside Redis.
async fn failover_under_load(ack_replicas: bool) -> FailoverRun {
    let mut set = TestSentinel::start();
    let client = Client::connect(&set.url()).await.unwrap();
    let jobs = (0..JOBS).map(|i| NewJob::new("q", "work").id(format!("job-{i}")));
    client.enqueue_bulk(jobs.collect()).await.unwrap();
    // The replica has every job before the run starts: enqueues lost in the failover are
    // not what this test is about (docs/operations.md says what a failover can lose).
    let mut direct = set.master().sync_conn();
    let _: () = redis::cmd("SET")
        .arg("sync")
        .arg(1)
        .query(&mut direct)
        .unwrap();
    let replicated: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut direct)
        .unwrap();
    assert_eq!(replicated, 1);

    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = runs.clone();
    // A client of its own, so that the worker's connections have to follow by themselves.
    let worker_client = Client::connect(&set.url()).await.unwrap();
    let mut builder = Worker::builder(&worker_client)
        .concurrency(CONCURRENCY)
        .queue("q", 1)
        .lease(Duration::from_secs(5))
        .recover_interval(Duration::from_millis(500))
        .handler("work", move |job: Job| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(job.id().to_owned()).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, JobError>(())
            }
        });
    if ack_replicas {
        builder = builder.ack_replicas(1, Duration::from_millis(500));
    }
    let worker = spawn(builder.build().unwrap());
    wait_until(LIMIT, "a quarter of the jobs ran", || async {
        runs.lock().unwrap().len() >= JOBS / 4
    })
    .await;

    // Watch the switch and the old primary's writes from threads of their own.
    let old = set.master().client();
    let sentinel = set.sentinel_port();
    let switched = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{sentinel}")).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe("+switch-master").unwrap();
        pubsub.get_message().unwrap();
        Instant::now()
    });
    let last_write = std::thread::spawn(move || {
        let mut conn = old.get_connection().unwrap();
        let (mut changes, mut at) = (None, None);
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            // The old primary closes its connections when it is demoted.
            let Ok(info) = redis::cmd("INFO").query::<String>(&mut conn) else {
                break;
            };
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
            };
            if field("role").as_deref() != Some("master") {
                break;
            }
            let now = field("rdb_changes_since_last_save");
            if now != changes {
                (changes, at) = (now, Some(Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        at
    });
    let set = tokio::task::spawn_blocking(move || {
        set.failover();
        set
    })
    .await
    .unwrap();
    let switched_at = switched.join().unwrap();
    let last_old_write = last_write.join().unwrap();

    let direct = Client::connect(&set.master().url()).await.unwrap();
    wait_until(LIMIT, "every job completed on the new primary", || async {
        count(&direct, "q", JobState::Completed).await == JOBS as u64
    })
    .await;
    let stats = worker.stop().await;
    let runs = runs.lock().unwrap().clone();
    FailoverRun {
        runs,
        last_old_write_after_switch_ms: last_old_write.map(|at| {
            let ms = |d: Duration| d.as_millis() as i128;
            match at.checked_duration_since(switched_at) {
                Some(after) => ms(after),
                None => -ms(switched_at - at),
            }
        }),
        stats,
    }
}

fn check_failover_run(run: &FailoverRun) {
    let mut twice = Vec::new();
    for i in 0..JOBS {
        let id = format!("job-{i}");
        let n = run.runs.get(&id).copied().unwrap_or(0);
        assert!(n >= 1, "{id} never ran");
        if n > 1 {
            twice.push((id, n));
        }
    }
    eprintln!(
        "failover: {} of {JOBS} jobs ran more than once (first: {:?}); old primary last \
         written {:?} ms after +switch-master; {:?}",
        twice.len(),
        &twice[..twice.len().min(10)],
        run.last_old_write_after_switch_ms,
        run.stats
    );
    assert!(
        twice.len() <= CONCURRENCY,
        "only the jobs in flight at the switch may run twice: {} did",
        twice.len()
    );
    if let Some(after) = run.last_old_write_after_switch_ms {
        assert!(
            after < 1000,
            "old primary written {after} ms after the switch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_failover_under_load_loses_no_job_and_reruns_at_most_the_jobs_in_flight() {
    check_failover_run(&failover_under_load(false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_failover_with_replicated_acks_loses_no_job_and_reruns_at_most_the_jobs_in_flight() {
    check_failover_run(&failover_under_load(true).await);
}

#[tokio::test]
async fn sentinel_url_with_an_unknown_master_name_is_unavailable() {
    let set = TestSentinel::start();
    let url = format!(
        "redis-sentinel://127.0.0.1:{}/nosuchmaster",
        set.sentinel_port()
    );
    let err = Client::connect(&url).await.expect_err("no such master");
    assert_eq!(err.kind(), tickq::ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no master by that name"), "{err}");
}

#[tokio::test]
async fn sentinel_url_with_no_sentinel_behind_it_is_unavailable() {
    let err = Client::connect("redis-sentinel://127.0.0.1:1/mymaster")
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.kind(), tickq::ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("sentinels"), "{err}");
}
