//! The worker runtime against a real Redis: handlers, outcomes, retries, timeouts, panics,
//! concurrency, weights, cancellation, corrupt jobs and shutdown.

use crate::common::{count, spawn, wait_until};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tickq::{Client, FixedBackoff, Job, JobError, JobState, NewJob, Worker};
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

async fn setup() -> (TestRedis, Client) {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    (redis, client)
}

/// Wait until queue `q` has, for each `(state, n)`, exactly `n` jobs in `state`.
async fn wait_for(client: &Client, counts: &[(JobState, u64)]) {
    let what = format!("q to hold {counts:?}");
    wait_until(LIMIT, &what, || async {
        for &(state, n) in counts {
            if count(client, "q", state).await != n {
                return false;
            }
        }
        true
    })
    .await;
}

/// A handler still running when the test acts on it (shutdown, abort).
async fn runs_a_minute(_job: Job) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[tokio::test]
async fn handler_sees_id_attempt_fence_and_result_is_kept() {
    let (_redis, client) = setup().await;
    let id = client
        .enqueue(NewJob::new("q", "k").id("job-1"))
        .await
        .unwrap()
        .id;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .handler("k", |job: Job| async move {
            Ok::<_, JobError>(format!("{} {} {}", job.id(), job.attempt(), job.fence()))
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Completed, 1)]).await;
    let info = client.job("q", &id).await.unwrap();
    assert_eq!(
        info.result.as_deref(),
        Some(format!("job-1 1 {}", info.fence).as_str())
    );
    assert!(info.fence > 0);
    assert_eq!(info.attempt, 1);
    assert!(info.finished_at.is_some() && info.started_at.is_some());
    let stats = w.stop().await;
    assert_eq!(stats.completed, 1);
}

#[tokio::test]
async fn failures_retry_by_policy_then_go_dead() {
    let (_redis, client) = setup().await;
    let id = client
        .enqueue(NewJob::new("q", "flaky").max_attempts(3))
        .await
        .unwrap()
        .id;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .retry_policy(FixedBackoff(Duration::from_millis(30)))
        .handler("flaky", move |job: Job| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(std::io::Error::other(format!("boom {}", job.attempt())))?;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Dead, 1)]).await;
    let info = client.job("q", &id).await.unwrap();
    assert_eq!(info.attempt, 3);
    assert_eq!(info.last_error.as_deref(), Some("boom 3"));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let counts = client.inspector().counts("q").await.unwrap();
    assert_eq!(counts.failed, 3);
    assert_eq!(counts.processed, 0);
    w.stop().await;
}

#[tokio::test]
async fn kill_goes_dead_at_once_and_retry_after_waits() {
    let (_redis, client) = setup().await;
    let killed = client.enqueue(NewJob::new("q", "kill")).await.unwrap().id;
    let later = client
        .enqueue(NewJob::new("q", "later").max_attempts(2))
        .await
        .unwrap()
        .id;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .handler("kill", |_job: Job| async {
            Err::<(), _>(JobError::kill("bad input"))
        })
        .handler("later", |job: Job| async move {
            if job.attempt() == 1 {
                Err(JobError::retry_after(Duration::from_millis(400), "not yet"))
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Dead, 1), (JobState::Completed, 1)]).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    let k = client.job("q", &killed).await.unwrap();
    assert_eq!(
        (k.state, k.attempt, k.last_error.as_deref()),
        (JobState::Dead, 1, Some("bad input"))
    );
    let l = client.job("q", &later).await.unwrap();
    assert_eq!((l.state, l.attempt), (JobState::Completed, 2));
    w.stop().await;
}

#[tokio::test]
async fn panics_and_timeouts_fail_the_job_not_the_worker() {
    let (_redis, client) = setup().await;
    let panicky = client
        .enqueue(NewJob::new("q", "panic").max_attempts(1))
        .await
        .unwrap()
        .id;
    let slow = client
        .enqueue(
            NewJob::new("q", "slow")
                .max_attempts(1)
                .timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap()
        .id;
    let fine = client.enqueue(NewJob::new("q", "fine")).await.unwrap().id;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(1)
        .handler("panic", |_job: Job| async {
            if true {
                panic!("handler exploded");
            }
            Ok::<_, JobError>(())
        })
        .handler("slow", |_job: Job| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, JobError>(())
        })
        .handler("fine", |_job: Job| async { Ok::<_, JobError>(()) })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Dead, 2), (JobState::Completed, 1)]).await;
    let p = client.job("q", &panicky).await.unwrap();
    assert!(p.last_error.unwrap().contains("handler exploded"));
    let s = client.job("q", &slow).await.unwrap();
    assert!(s.last_error.unwrap().contains("timed out"));
    assert_eq!(
        client.job("q", &fine).await.unwrap().state,
        JobState::Completed
    );
    w.stop().await;
}

#[tokio::test]
async fn corrupt_jobs_go_dead_with_the_reason_and_the_worker_goes_on() {
    let (redis, client) = setup().await;
    let garbage = client
        .enqueue(NewJob::new("q", "k").id("garbage"))
        .await
        .unwrap()
        .id;
    let bad_payload = client
        .enqueue(NewJob::new("q", "typed").payload(serde_json::json!("not a number")))
        .await
        .unwrap()
        .id;
    let good = client.enqueue(NewJob::new("q", "k")).await.unwrap().id;
    // Overwrite the stored envelope with bytes that are not JSON at all: the data after the
    // payload record's header line (docs/redis-keys.md, `jobs`).
    let mut conn = redis.sync_conn();
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg("tickq:{q}:jobs")
        .arg("garbage")
        .query(&mut conn)
        .unwrap();
    let header_end = stored.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut payload = stored[..header_end].to_vec();
    payload.extend_from_slice(b"\xff\x00not json");
    let _: () = redis::cmd("HSET")
        .arg("tickq:{q}:jobs")
        .arg("garbage")
        .arg(payload)
        .query(&mut conn)
        .unwrap();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .handler("k", |_job: Job| async { Ok::<_, JobError>(()) })
        .handler("typed", |job: Job| async move {
            let n: u64 = job.payload_as()?;
            Ok::<_, JobError>(n.to_string())
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Dead, 2), (JobState::Completed, 1)]).await;
    let g = client.job("q", &garbage).await.unwrap();
    assert_eq!(g.state, JobState::Dead);
    assert!(
        g.last_error.as_deref().unwrap().starts_with("corrupt job"),
        "{g:?}"
    );
    assert!(g.corrupt.is_some());
    let b = client.job("q", &bad_payload).await.unwrap();
    assert!(b.last_error.unwrap().contains("payload does not decode"));
    assert_eq!(b.attempt, 1, "an undecodable payload is not retried");
    assert_eq!(
        client.job("q", &good).await.unwrap().state,
        JobState::Completed
    );
    w.stop().await;
}

#[tokio::test]
async fn concurrency_limit_is_respected() {
    let (_redis, client) = setup().await;
    let jobs = (0..40).map(|_| NewJob::new("q", "k")).collect();
    client.enqueue_bulk(jobs).await.unwrap();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let w = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(4)
        .handler("k", move |_job: Job| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let c = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(c, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Completed, 40)]).await;
    assert_eq!(peak.load(Ordering::SeqCst), 4);
    w.stop().await;
}

#[tokio::test]
async fn weighted_queues_are_all_served_heavier_first_more_often() {
    let (_redis, client) = setup().await;
    for q in ["heavy", "light"] {
        let jobs = (0..300).map(|_| NewJob::new(q, "k")).collect();
        client.enqueue_bulk(jobs).await.unwrap();
    }
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = order.clone();
    let w = Worker::builder(&client)
        .queue("heavy", 5)
        .queue("light", 1)
        .concurrency(1)
        .claim_batch(1)
        .handler("k", move |job: Job| {
            o.lock().unwrap().push(job.queue().to_owned());
            async { Ok::<_, JobError>(()) }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_until(LIMIT, "all done", || async {
        count(&client, "heavy", JobState::Completed).await == 300
            && count(&client, "light", JobState::Completed).await == 300
    })
    .await;
    w.stop().await;
    let order = order.lock().unwrap();
    let first_300_heavy = order[..300].iter().filter(|q| *q == "heavy").count();
    // Expected 5/6 of 300 = 250; allow for randomness, but light must not starve either.
    assert!(
        (200..=290).contains(&first_300_heavy),
        "heavy among the first 300: {first_300_heavy}"
    );
}

#[tokio::test]
async fn priorities_run_higher_first_then_fifo() {
    let (_redis, client) = setup().await;
    let mut jobs = Vec::new();
    for (i, prio) in [0, 5, 0, 5, -3, 0].iter().enumerate() {
        jobs.push(NewJob::new("q", "k").id(format!("j{i}")).priority(*prio));
    }
    client.enqueue_bulk(jobs).await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = order.clone();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(1)
        .handler("k", move |job: Job| {
            o.lock().unwrap().push(job.id().to_owned());
            async { Ok::<_, JobError>(()) }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Completed, 6)]).await;
    w.stop().await;
    assert_eq!(*order.lock().unwrap(), ["j1", "j3", "j0", "j2", "j5", "j4"]);
}

/// Redis' clock in microseconds: the one clock that decides when a job is due.
async fn redis_time_us(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test]
async fn delayed_jobs_never_start_before_they_are_due() {
    let (redis, client) = setup().await;
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = starts.clone();
    let handler_redis = redis.conn().await;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(8)
        .handler("k", move |job: Job| {
            let (s, mut conn) = (s.clone(), handler_redis.clone());
            async move {
                let at = redis_time_us(&mut conn).await;
                s.lock().unwrap().push((job.id().to_owned(), at));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    // Delays with sub-millisecond parts (x.9 ms and so on): a due time truncated to whole
    // milliseconds, or added to Redis' clock read in whole milliseconds, lands up to ~2 ms
    // before the instant the job was asked for.
    let mut conn = redis.conn().await;
    let mut asked = Vec::new();
    for i in 0..40u64 {
        let delay = Duration::from_micros(15_000 + i * 2_937);
        let before = redis_time_us(&mut conn).await;
        let id = format!("j{i}");
        client
            .enqueue(NewJob::new("q", "k").id(&id).delay(delay))
            .await
            .unwrap();
        asked.push((id, before + delay.as_micros() as i64));
    }
    wait_for(&client, &[(JobState::Completed, 40)]).await;
    w.stop().await;
    let starts = starts.lock().unwrap().clone();
    for (id, due_us) in &asked {
        let info = client.job("q", id).await.unwrap();
        let stored_us = info.due_at.unwrap().as_microsecond();
        assert!(
            stored_us >= *due_us,
            "{id}: stored due time {stored_us} µs is before the asked-for {due_us} µs"
        );
        let started = starts.iter().find(|(i, _)| i == id).unwrap().1;
        assert!(
            started >= *due_us,
            "{id} started {} µs early",
            due_us - started
        );
    }
}

#[tokio::test]
async fn delayed_jobs_wait_for_their_time_and_idle_workers_wake_for_new_jobs() {
    let (_redis, client) = setup().await;
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = starts.clone();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .handler("k", move |job: Job| {
            s.lock()
                .unwrap()
                .push((job.id().to_owned(), Instant::now()));
            async { Ok::<_, JobError>(()) }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    tokio::time::sleep(Duration::from_millis(200)).await; // the worker is idle and asleep
    let t0 = Instant::now();
    client
        .enqueue(
            NewJob::new("q", "k")
                .id("later")
                .delay(Duration::from_millis(600)),
        )
        .await
        .unwrap();
    client
        .enqueue(NewJob::new("q", "k").id("now"))
        .await
        .unwrap();
    wait_for(&client, &[(JobState::Completed, 2)]).await;
    w.stop().await;
    let starts = starts.lock().unwrap();
    let at = |id: &str| starts.iter().find(|(i, _)| i == id).unwrap().1 - t0;
    assert!(
        at("now") < Duration::from_millis(500),
        "woken late: {:?}",
        at("now")
    );
    assert!(
        at("later") >= Duration::from_millis(590),
        "ran early: {:?}",
        at("later")
    );
    assert!(
        at("later") < Duration::from_millis(1500),
        "ran late: {:?}",
        at("later")
    );
}

#[tokio::test]
async fn cancelling_a_running_job_stops_its_handler() {
    let (_redis, client) = setup().await;
    let id = client.enqueue(NewJob::new("q", "long")).await.unwrap().id;
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .lease(Duration::from_millis(600))
        .handler("long", move |job: Job| {
            let s = s.clone();
            async move {
                job.stopped().await;
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Active, 1)]).await;
    assert_eq!(
        client.cancel("q", &id).await.unwrap(),
        tickq::CancelOutcome::Cancelling
    );
    wait_for(&client, &[(JobState::Cancelled, 1)]).await;
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
    assert_eq!(
        client.job("q", &id).await.unwrap().state,
        JobState::Cancelled
    );
    w.stop().await;
}

/// A handler that answers an error as soon as it is stopped (as the `exec` kind does once its
/// program is gone) ends the same poll in which the worker sees the stop: the job is still
/// cancelled, not failed with the handler's answer. Before, whichever of the two the worker
/// looked at first won, so about half of such jobs went to retry or dead (seen as the
/// dashboard test's cancelled `sleep 30` job showing "dead", last error "stopped").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_cancelled_is_cancelled_even_if_its_handler_answers_an_error() {
    const JOBS: usize = 20;
    let (_redis, client) = setup().await;
    let jobs = (0..JOBS).map(|_| NewJob::new("q", "stops").max_attempts(1));
    let ids: Vec<String> = client
        .enqueue_bulk(jobs.collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(JOBS)
        // A running job learns of its cancel at its lease's next renewal.
        .lease(Duration::from_millis(600))
        .handler("stops", |job: Job| async move {
            job.stopped().await;
            Err::<(), _>(JobError::retry("stopped"))
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_until(LIMIT, "every job running", || async {
        count(&client, "q", JobState::Active).await == JOBS as u64
    })
    .await;
    for id in &ids {
        assert_eq!(
            client.cancel("q", id).await.unwrap(),
            tickq::CancelOutcome::Cancelling
        );
    }
    wait_until(LIMIT, "every job ended", || async {
        count(&client, "q", JobState::Active).await == 0
    })
    .await;
    let mut states = Vec::new();
    for id in &ids {
        states.push(client.job("q", id).await.unwrap().state);
    }
    assert!(
        states.iter().all(|s| *s == JobState::Cancelled),
        "{states:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_short_jobs_finish_and_hands_long_ones_back_uncharged() {
    let (_redis, client) = setup().await;
    let short = client.enqueue(NewJob::new("q", "short")).await.unwrap().id;
    let long = client.enqueue(NewJob::new("q", "long")).await.unwrap().id;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .shutdown_timeout(Duration::from_millis(500))
        .handler("short", |_job: Job| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, JobError>(())
        })
        .handler("long", runs_a_minute)
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Active, 2)]).await;
    let stats = w.stop().await;
    assert_eq!(
        client.job("q", &short).await.unwrap().state,
        JobState::Completed
    );
    let l = client.job("q", &long).await.unwrap();
    assert_eq!(
        (l.state, l.attempt),
        (JobState::Pending, 0),
        "handed back, attempt not charged"
    );
    assert_eq!(stats.handed_back, 1);
}

#[tokio::test]
async fn force_hands_everything_back_at_once() {
    let (_redis, client) = setup().await;
    client.enqueue(NewJob::new("q", "long")).await.unwrap();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .shutdown_timeout(Duration::from_secs(60))
        .handler("long", runs_a_minute)
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Active, 1)]).await;
    let t = Instant::now();
    w.handle.force();
    let (result, stats) = w.task.await.unwrap();
    result.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(stats.handed_back, 1);
    assert_eq!(count(&client, "q", JobState::Pending).await, 1);
}

#[tokio::test]
async fn unknown_kind_is_retried_not_lost() {
    let (_redis, client) = setup().await;
    let id = client
        .enqueue(NewJob::new("q", "nobody").max_attempts(2))
        .await
        .unwrap()
        .id;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .retry_policy(FixedBackoff(Duration::from_millis(10)))
        .handler("k", |_job: Job| async { Ok::<_, JobError>(()) })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Dead, 1)]).await;
    let info = client.job("q", &id).await.unwrap();
    assert!(
        info.last_error
            .unwrap()
            .contains("no handler for job kind \"nobody\"")
    );
    w.stop().await;
}

#[tokio::test]
async fn completed_jobs_are_capped_by_retention() {
    let (_redis, client) = setup().await;
    let jobs = (0..30).map(|_| NewJob::new("q", "k")).collect();
    client.enqueue_bulk(jobs).await.unwrap();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .retention(tickq::Retention {
            completed_max: 10,
            ..Default::default()
        })
        .handler("k", |_job: Job| async { Ok::<_, JobError>(()) })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_until(LIMIT, "processed", || async {
        client.inspector().counts("q").await.unwrap().processed == 30
    })
    .await;
    assert_eq!(count(&client, "q", JobState::Completed).await, 10);
    w.stop().await;
}

#[tokio::test]
async fn dropping_the_run_future_hands_jobs_back_and_stops_renewing() {
    let (_redis, client) = setup().await;
    let id = client.enqueue(NewJob::new("q", "long")).await.unwrap().id;
    let w = Worker::builder(&client)
        .queue("q", 1)
        .lease(Duration::from_millis(600))
        .stop_grace(Duration::from_millis(10))
        .handler("long", runs_a_minute)
        .build()
        .unwrap();
    let run = tokio::spawn(async move { w.run().await });
    wait_for(&client, &[(JobState::Active, 1)]).await;
    run.abort();
    let _ = run.await;
    wait_for(&client, &[(JobState::Pending, 1)]).await;
    let job = client.job("q", &id).await.unwrap();
    assert_eq!(job.attempt, 0, "not charged");
}

#[tokio::test]
async fn a_timed_out_handler_is_told_to_stop_and_sees_when_it_was_due() {
    let (_redis, client) = setup().await;
    let id = client
        .enqueue(
            NewJob::new("q", "slow")
                .max_attempts(1)
                .timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap()
        .id;
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = seen.clone();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .handler("slow", move |job: Job| {
            let s = s.clone();
            async move {
                job.stopped().await;
                *s.lock().unwrap() = Some((job.due_at(), job.is_stopped()));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    wait_for(&client, &[(JobState::Dead, 1)]).await;
    w.stop().await;
    let info = client.job("q", &id).await.unwrap();
    assert!(
        info.last_error.unwrap().contains("timed out"),
        "its late Ok did not count"
    );
    let (due, stopped) = seen.lock().unwrap().expect("the handler saw the stop");
    assert!(stopped);
    assert_eq!(due, info.due_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_job_starts_after_pause_returns_and_resume_runs_them_again() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let starts = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let mut workers = Vec::new();
    for node in ["n1", "n2"] {
        // Each worker has its own client (its own connections), like two nodes.
        let own = Client::connect(&redis.url()).await.unwrap();
        let s = starts.clone();
        let w = Worker::builder(&own)
            .node(node)
            .queue("q", 1)
            .concurrency(4)
            .handler("k", move |_job: Job| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(Instant::now());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok::<_, JobError>(())
                }
            })
            .build()
            .unwrap();
        workers.push(spawn(w));
    }
    // A steady stream of jobs, before, during and after the pause.
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                client.enqueue(NewJob::new("q", "k")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let started = || starts.lock().unwrap().len();
    wait_until(LIMIT, "jobs running", || async { started() >= 20 }).await;

    let inspector = client.inspector();
    assert!(inspector.pause_queue("q").await.unwrap().changed);
    let paused_at = Instant::now();
    // Absence of starts can only be observed by waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A claim that ran before the pause may hand its job to the handler a moment later.
    let margin = Duration::from_millis(50);
    let late: Vec<Duration> = starts
        .lock()
        .unwrap()
        .iter()
        .filter(|&&t| t > paused_at + margin)
        .map(|&t| t - paused_at)
        .collect();
    assert!(late.is_empty(), "jobs started after the pause: {late:?}");
    let counts = inspector.counts("q").await.unwrap();
    assert!(counts.paused);
    assert_eq!(counts.states[&JobState::Active], 0, "running jobs finish");
    assert!(counts.states[&JobState::Pending] > 0, "enqueues go on");

    let before_resume = started();
    assert!(inspector.resume_queue("q").await.unwrap().changed);
    wait_until(LIMIT, "jobs run again", || async {
        started() >= before_resume + 20
    })
    .await;
    assert!(!inspector.counts("q").await.unwrap().paused);

    producer.abort();
    let _ = producer.await;
    for w in workers {
        w.stop().await;
    }
}

#[tokio::test]
async fn a_rescheduled_job_runs_at_its_new_time_and_wakes_sleeping_workers() {
    let (_redis, client) = setup().await;
    let started = Arc::new(std::sync::Mutex::new(None));
    let s = started.clone();
    let w = Worker::builder(&client)
        .queue("q", 1)
        .handler("k", move |_job: Job| {
            *s.lock().unwrap() = Some(Instant::now());
            async { Ok::<_, JobError>(()) }
        })
        .build()
        .unwrap();
    let w = spawn(w);
    let id = client
        .enqueue(NewJob::new("q", "k").delay(Duration::from_secs(3600)))
        .await
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_millis(200)).await; // the worker sleeps towards an hour
    let moved = Instant::now();
    let was = client
        .reschedule_in("q", &id, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(was, JobState::Scheduled);
    wait_for(&client, &[(JobState::Completed, 1)]).await;
    let at = started.lock().unwrap().unwrap() - moved;
    assert!(at >= Duration::from_millis(290), "ran early: {at:?}");
    assert!(at < Duration::from_millis(1500), "ran late: {at:?}");
    w.stop().await;
}
