//! Unique jobs and queue limits against a real Redis, with several worker nodes (each with its
//! own connections) sharing one queue.

use crate::common::{Running, count, spawn, wait_until};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickq::{Client, ErrorKind, Job, JobError, JobState, NewJob, QueueLimits, Rate, Worker};
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(30);

async fn clients(redis: &TestRedis, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Client::connect(&redis.url()).await.unwrap());
    }
    out
}

#[tokio::test]
async fn racing_unique_enqueues_create_one_job_and_a_new_one_once_it_ended() {
    let redis = TestRedis::start();
    let clients = clients(&redis, 4).await;
    let unique = || {
        NewJob::new("q", "report")
            .unique_for(Duration::from_secs(60))
            .unique_key("nightly-report")
    };
    let attempts = (0..100).map(|i| {
        let client = clients[i % clients.len()].clone();
        let job = unique();
        tokio::spawn(async move { client.enqueue(job).await })
    });
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for answer in futures::future::join_all(attempts).await {
        match answer.unwrap() {
            Ok(job) => created.push(job.id),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                let job = e.existing_job().expect("the error names the existing job");
                assert!(job.duplicate);
                existing.push(job.id.clone());
            }
        }
    }
    assert_eq!(created.len(), 1, "exactly one job is created");
    assert_eq!(existing.len(), 99);
    assert!(existing.iter().all(|id| *id == created[0]));
    let client = &clients[0];
    assert_eq!(count(client, "q", JobState::Pending).await, 1);

    let worker = Worker::builder(client)
        .queue("q", 1)
        .handler("report", |_job: Job| async { Ok::<_, JobError>(()) })
        .build()
        .unwrap();
    let worker = spawn(worker);
    wait_until(LIMIT, "the job completed", || async {
        count(client, "q", JobState::Completed).await == 1
    })
    .await;
    worker.stop().await;
    let again = client.enqueue(unique()).await.unwrap();
    assert!(again.created && again.id != created[0]);
}

/// Start `nodes` workers, each with its own client, running `handler` for kind "k" of "q".
fn start_nodes<F, Fut>(clients: &[Client], concurrency: usize, handler: F) -> Vec<Running>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    clients
        .iter()
        .map(|client| {
            let handler = handler.clone();
            let worker = Worker::builder(client)
                .queue("q", 1)
                .concurrency(concurrency)
                .handler("k", move |_job: Job| {
                    let run = handler();
                    async move {
                        run.await;
                        Ok::<_, JobError>(())
                    }
                })
                .build()
                .unwrap();
            spawn(worker)
        })
        .collect()
}

#[tokio::test]
async fn three_nodes_never_run_more_than_the_concurrency_limit() {
    let redis = TestRedis::start();
    let clients = clients(&redis, 3).await;
    let inspector = clients[0].inspector();
    let limits = QueueLimits {
        concurrency: Some(3),
        rate: None,
    };
    inspector.set_limits("q", limits).await.unwrap();
    let jobs = (0..60).map(|_| NewJob::new("q", "k")).collect();
    clients[0].enqueue_bulk(jobs).await.unwrap();

    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let nodes = start_nodes(&clients, 8, move || {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(40)).await;
            r.fetch_sub(1, Ordering::SeqCst);
        }
    });

    // Sample what Redis counts as active while the jobs run.
    let mut sampled_peak = 0;
    let deadline = Instant::now() + LIMIT;
    loop {
        let counts = inspector.counts("q").await.unwrap();
        sampled_peak = sampled_peak.max(counts.states[&JobState::Active]);
        if counts.states[&JobState::Completed] == 60 {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {counts:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for node in nodes {
        node.stop().await;
    }
    assert!(sampled_peak <= 3, "Redis saw {sampled_peak} active jobs");
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "handlers ran more than 3 at once, or never 3 (the limit is not a lock)"
    );
    let counts = inspector.counts("q").await.unwrap();
    assert_eq!(
        counts.failed, 0,
        "jobs over the limit wait, they do not fail"
    );
}

#[tokio::test]
async fn three_nodes_share_one_rate_limit() {
    let redis = TestRedis::start();
    let clients = clients(&redis, 3).await;
    let inspector = clients[0].inspector();
    let limits = QueueLimits {
        concurrency: None,
        rate: Some(Rate::new(50, Duration::from_secs(1))),
    };
    inspector.set_limits("q", limits).await.unwrap();
    let jobs = (0..2000).map(|_| NewJob::new("q", "k")).collect();
    clients[0].enqueue_bulk(jobs).await.unwrap();

    let done: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let d = done.clone();
    let nodes = start_nodes(&clients, 16, move || {
        let d = d.clone();
        async move { d.lock().unwrap().push(Instant::now()) }
    });
    wait_until(LIMIT, "the first completion", || async {
        !done.lock().unwrap().is_empty()
    })
    .await;
    let t0 = done.lock().unwrap()[0];
    tokio::time::sleep_until((t0 + Duration::from_millis(10_500)).into()).await;
    for node in nodes {
        node.stop().await;
    }

    let done = done.lock().unwrap().clone();
    let mut per_second = [0usize; 10];
    for t in &done {
        let s = (*t - t0).as_millis() / 1000;
        if s < 10 {
            per_second[s as usize] += 1;
        }
    }
    let total: usize = per_second.iter().sum();
    eprintln!("completions per second: {per_second:?}");
    assert!(
        (450..=550).contains(&total),
        "{total} completions in 10 s, expected 500 ± 10%; per second: {per_second:?}"
    );
    // Exactly what the limiter governs: claim times on Redis' clock (local completion times
    // also carry this machine's scheduling delays). No window of 1 s may hold more than 50.
    let mut completed = Vec::new();
    let mut cursor = None;
    loop {
        let page = inspector
            .jobs(
                "q",
                JobState::Completed,
                &Default::default(),
                cursor.as_deref(),
                1000,
            )
            .await
            .unwrap();
        completed.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut starts: Vec<i64> = completed
        .iter()
        .map(|j| {
            j.started_at
                .expect("a completed job has a start")
                .as_millisecond()
        })
        .collect();
    starts.sort_unstable();
    for (i, &from) in starts.iter().enumerate() {
        let in_window = starts[i..].iter().take_while(|&&t| t < from + 1000).count();
        assert!(
            in_window <= 50,
            "{in_window} starts in the second from Redis time {from}"
        );
    }
    let counts = inspector.counts("q").await.unwrap();
    assert_eq!(
        counts.failed, 0,
        "jobs over the limit wait, they do not fail"
    );
    assert!(counts.states[&JobState::Pending] >= 1400);
}
