//! Leaderless cron firing against a real Redis: many schedulers (some in other processes, one
//! killed mid-way) fire each tick once; catch-up and overlap policies; registration.

use crate::common::{CHILD_ENV, count, signal, spawn, spawn_child_worker, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;
use tickq::{
    Catchup, Client, Job, JobError, JobState, Overlap, ScheduleSpec, Scheduler, Task, Upserted,
    Worker,
};
use tickq_testkit::TestRedis;

const ROLE: &str = "TICKQ_TEST_ROLE";

/// A scheduler process (or, with TICKQ_TEST_ROLE=hanging-worker, a worker whose jobs never
/// end) for the tests below; stops on SIGTERM.
#[test]
#[ignore = "entry point of the scheduler processes that the schedule tests start"]
fn child_worker_process() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::connect(&url).await.unwrap();
        if std::env::var(ROLE).as_deref() == Ok("hanging-worker") {
            let worker = Worker::builder(&client)
                .queue("q", 1)
                .lease(Duration::from_millis(900))
                .handler("tick", |_job: Job| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok::<_, JobError>(())
                })
                .build()
                .unwrap();
            worker.shutdown_handle().on_signals().unwrap();
            worker.run().await.unwrap();
            return;
        }
        let scheduler = Scheduler::builder(&client).build();
        scheduler.shutdown_handle().on_signals().unwrap();
        scheduler.run().await.unwrap();
    });
}

fn every_second(name: &str, tasks: usize) -> ScheduleSpec {
    let mut spec = ScheduleSpec::new(name, "q", "@every 1s");
    for i in 0..tasks {
        spec = spec.task(Task::new("tick", serde_json::json!({"task": i})));
    }
    spec
}

/// Tick instant (ms) -> task indexes created, from the deterministic job ids.
async fn ticks_created(client: &Client, name: &str) -> BTreeMap<i64, Vec<usize>> {
    let mut ticks: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let inspector = client.inspector();
    for state in [JobState::Pending, JobState::Active, JobState::Completed] {
        for job in inspector
            .jobs("q", state, &Default::default(), None, 1000)
            .await
            .unwrap()
            .jobs
        {
            let parts: Vec<&str> = job.id.split(':').collect();
            assert_eq!((parts[0], parts[1]), ("cron", name), "{}", job.id);
            ticks
                .entry(parts[2].parse().unwrap())
                .or_default()
                .push(parts[3].parse().unwrap());
        }
    }
    ticks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_schedulers_fire_every_tick_exactly_once_even_when_one_is_killed() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("beat", 3))
        .await
        .unwrap();

    let mut children: Vec<_> = (0..3)
        .map(|_| spawn_child_worker("schedule::child_worker_process", &redis.url(), &[]))
        .collect();
    let mut local = Vec::new();
    for _ in 0..2 {
        let c = Client::connect(&redis.url()).await.unwrap(); // its own connections
        let s = std::sync::Arc::new(Scheduler::builder(&c).build());
        let runner = s.clone();
        local.push((s, tokio::spawn(async move { runner.run().await })));
    }
    wait_until(Duration::from_secs(30), "10 ticks", || async {
        client.inspector().schedule("beat").await.unwrap().fired >= 10
    })
    .await;
    signal(&children[0], libc::SIGKILL);
    children.remove(0).wait().unwrap();
    wait_until(Duration::from_secs(30), "22 ticks", || async {
        client.inspector().schedule("beat").await.unwrap().fired >= 22
    })
    .await;
    client.inspector().pause_schedule("beat").await.unwrap();
    for (s, task) in local {
        s.shutdown_handle().shutdown();
        task.await.unwrap().unwrap();
    }
    for child in &children {
        signal(child, libc::SIGTERM);
    }
    for mut child in children {
        assert!(
            tokio::task::block_in_place(|| child.wait())
                .unwrap()
                .success()
        );
    }

    let info = client.inspector().schedule("beat").await.unwrap();
    let ticks = ticks_created(&client, "beat").await;
    assert_eq!(
        ticks.len() as u64,
        info.fired,
        "one set of jobs per fired tick"
    );
    assert_eq!(info.skipped, 0, "no tick missed");
    let instants: Vec<i64> = ticks.keys().copied().collect();
    for pair in instants.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1000,
            "consecutive ticks, none missed: {instants:?}"
        );
    }
    for (tick, mut tasks) in ticks {
        assert_eq!(tick % 1000, 0, "ticks are aligned to the epoch");
        tasks.sort();
        assert_eq!(tasks, [0, 1, 2], "each task of tick {tick} created once");
    }
}

/// Wait until Redis' clock is `offset_ms` past a whole second.
async fn at_offset_in_second(client: &Client, offset_ms: i64) {
    loop {
        let info = client.inspector(); // any call; we need Redis time
        let _ = info;
        let now = redis_now_ms(client).await;
        let within = now.rem_euclid(1000);
        if (offset_ms..offset_ms + 100).contains(&within) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(
            ((offset_ms - within).rem_euclid(1000)) as u64,
        ))
        .await;
    }
}

async fn redis_now_ms(client: &Client) -> i64 {
    // The schedule info carries Redis times; a throwaway upsert-free read: the watermark of a
    // probe schedule is not needed, so use the job created time of a probe job instead.
    let probe = client
        .enqueue(tickq::NewJob::new("probe", "probe"))
        .await
        .unwrap();
    let job = client.job("probe", &probe.id).await.unwrap();
    client.inspector().delete(&probe.id).await.unwrap();
    job.created_at.unwrap().as_millisecond()
}

async fn catch_up_after_5_missed_ticks(
    catchup: Catchup,
) -> (tickq::ScheduleInfo, BTreeMap<i64, Vec<usize>>) {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("late", 1).catchup(catchup))
        .await
        .unwrap();
    // Every node is down for five ticks; the one that comes back arrives 700 ms after a tick,
    // so the latest missed tick is late beyond the misfire grace.
    tokio::time::sleep(Duration::from_millis(4900)).await;
    at_offset_in_second(&client, 700).await;
    let scheduler = std::sync::Arc::new(Scheduler::builder(&client).build());
    let runner = scheduler.clone();
    let task = tokio::spawn(async move { runner.run().await });
    tokio::time::sleep(Duration::from_millis(150)).await; // the catch-up pass, not the next tick
    let info = client.inspector().schedule("late").await.unwrap();
    let ticks = ticks_created(&client, "late").await;
    scheduler.shutdown_handle().shutdown();
    task.await.unwrap().unwrap();
    (info, ticks)
}

#[tokio::test]
async fn catchup_skip_fires_none_of_the_missed_ticks() {
    let (info, ticks) = catch_up_after_5_missed_ticks(Catchup::Skip).await;
    assert_eq!(info.fired, 0, "{info:?}");
    assert!(info.skipped >= 5, "{info:?}");
    assert!(ticks.is_empty());
}

#[tokio::test]
async fn catchup_latest_fires_only_the_most_recent_missed_tick() {
    let (info, ticks) = catch_up_after_5_missed_ticks(Catchup::Latest).await;
    assert_eq!(info.fired, 1, "{info:?}");
    assert!(info.skipped >= 4, "{info:?}");
    let latest = *ticks.keys().next().unwrap();
    assert_eq!(
        info.watermark.unwrap().as_millisecond(),
        latest,
        "the most recent one"
    );
}

#[tokio::test]
async fn catchup_all_fires_every_missed_tick() {
    let (info, ticks) = catch_up_after_5_missed_ticks(Catchup::All).await;
    assert!(info.fired >= 5, "{info:?}");
    assert_eq!(info.skipped, 0);
    assert_eq!(ticks.len() as u64, info.fired);
    let instants: Vec<i64> = ticks.keys().copied().collect();
    assert!(
        instants.windows(2).all(|w| w[1] - w[0] == 1000),
        "{instants:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_while_the_last_run_is_active_and_resumes_after_its_runner_dies() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("solo", 1).overlap(Overlap::Forbid))
        .await
        .unwrap();
    // The first runner hangs on its job, then is killed without a word.
    let mut runner_process = spawn_child_worker(
        "schedule::child_worker_process",
        &redis.url(),
        &[(ROLE, "hanging-worker")],
    );
    let scheduler = std::sync::Arc::new(Scheduler::builder(&client).build());
    let runner = scheduler.clone();
    let sched_task = tokio::spawn(async move { runner.run().await });
    wait_until(
        Duration::from_secs(20),
        "ticks skipped while a run is active",
        || async { client.inspector().schedule("solo").await.unwrap().skipped >= 2 },
    )
    .await;
    assert_eq!(client.inspector().schedule("solo").await.unwrap().fired, 1);
    signal(&runner_process, libc::SIGKILL);
    runner_process.wait().unwrap();
    let w = spawn(
        Worker::builder(&client)
            .queue("q", 1)
            .recover_interval(Duration::from_millis(100))
            .handler("tick", |_job: Job| async { Ok::<_, JobError>(()) })
            .build()
            .unwrap(),
    );
    wait_until(
        Duration::from_secs(20),
        "the schedule fires again",
        || async { client.inspector().schedule("solo").await.unwrap().fired >= 3 },
    )
    .await;
    scheduler.shutdown_handle().shutdown();
    sched_task.await.unwrap().unwrap();
    w.stop().await;
}

#[tokio::test]
async fn replace_cancels_the_running_job_and_runs_the_new_tick() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("fresh", 1).overlap(Overlap::Replace))
        .await
        .unwrap();
    let w = spawn(
        Worker::builder(&client)
            .queue("q", 1)
            .lease(Duration::from_millis(600))
            .stop_grace(Duration::from_millis(50))
            .handler("tick", |job: Job| async move {
                job.stopped().await;
                Ok::<_, JobError>(())
            })
            .build()
            .unwrap(),
    );
    let scheduler = std::sync::Arc::new(Scheduler::builder(&client).build());
    let runner = scheduler.clone();
    let sched_task = tokio::spawn(async move { runner.run().await });
    wait_until(Duration::from_secs(20), "two runs replaced", || async {
        count(&client, "q", JobState::Cancelled).await >= 2
    })
    .await;
    scheduler.shutdown_handle().shutdown();
    sched_task.await.unwrap().unwrap();
    assert_eq!(
        count(&client, "q", JobState::Active).await,
        1,
        "the newest tick runs"
    );
    let cancelled = client
        .inspector()
        .jobs("q", JobState::Cancelled, &Default::default(), None, 10)
        .await
        .unwrap()
        .jobs;
    assert!(
        cancelled.iter().all(|j| j.attempt == 1),
        "they had started: {cancelled:?}"
    );
    w.handle.force();
    let _ = w.task.await;
}

#[tokio::test]
async fn registration_is_idempotent_versioned_and_controllable() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let spec = ScheduleSpec::new("nightly", "q", "0 2 * * *")
        .timezone("Asia/Shanghai")
        .task(Task::new("report", serde_json::json!({"part": 1})));
    assert_eq!(
        client.upsert_schedule(&spec).await.unwrap(),
        Upserted::Created
    );
    assert_eq!(
        client.upsert_schedule(&spec).await.unwrap(),
        Upserted::Unchanged
    );
    let info = client.inspector().schedule("nightly").await.unwrap();
    assert_eq!(info.version, 1);
    // 02:00 in Shanghai is 18:00 UTC.
    let next = info.next_at.unwrap();
    assert_eq!(next.as_second() % 86_400, 18 * 3600, "{next}");

    let changed = spec.clone().timezone("UTC");
    assert_eq!(
        client.upsert_schedule(&changed).await.unwrap(),
        Upserted::Updated
    );
    let info = client.inspector().schedule("nightly").await.unwrap();
    assert_eq!((info.version, info.spec.timezone.as_str()), (2, "UTC"));
    assert_eq!(info.next_at.unwrap().as_second() % 86_400, 2 * 3600);

    client.inspector().pause_schedule("nightly").await.unwrap();
    assert!(client.inspector().schedule("nightly").await.unwrap().paused);
    client.inspector().resume_schedule("nightly").await.unwrap();
    assert!(!client.inspector().schedule("nightly").await.unwrap().paused);

    let jobs = client
        .inspector()
        .trigger_schedule("nightly")
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.len(), 1);
    let job = client.job("q", &jobs[0].id).await.unwrap();
    assert_eq!(job.meta.get("cron").map(String::as_str), Some("nightly"));
    assert_eq!(
        client
            .inspector()
            .schedules()
            .await
            .unwrap()
            .schedules
            .len(),
        1
    );

    client.inspector().remove_schedule("nightly").await.unwrap();
    let err = client.inspector().schedule("nightly").await.unwrap_err();
    assert_eq!(err.kind(), tickq::ErrorKind::NotFound);
    assert_eq!(
        client
            .inspector()
            .remove_schedule("nightly")
            .await
            .unwrap_err()
            .kind(),
        tickq::ErrorKind::NotFound
    );
    let bad =
        ScheduleSpec::new("bad", "q", "0 25 * * *").task(Task::new("k", serde_json::Value::Null));
    let err = client.upsert_schedule(&bad).await.unwrap_err();
    assert!(err.to_string().contains("hour"), "{err}");
}

/// Worker id -> (tick, task) runs recorded by the spread test's handlers.
type Runs = std::sync::Arc<std::sync::Mutex<Vec<(String, i64, u64)>>>;

async fn spread_node(url: &str, name: &str, runs: &Runs) -> crate::common::Running {
    let client = Client::connect(url).await.unwrap(); // each node has its own connections
    let runs = runs.clone();
    let node = name.to_owned();
    let worker = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(4)
        .handler("tick", move |job: Job| {
            let (runs, node) = (runs.clone(), node.clone());
            async move {
                let tick: i64 = job.meta("scheduled_at").unwrap().parse().unwrap();
                let task = job.payload()["task"].as_u64().unwrap();
                runs.lock().unwrap().push((node, tick, task));
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    spawn(worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_of_a_tick_spread_over_idle_nodes_and_survivors_take_all() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("fanout", 4))
        .await
        .unwrap();
    let runs: Runs = Default::default();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(spread_node(&redis.url(), name, &runs).await);
    }
    let scheduler = std::sync::Arc::new(Scheduler::builder(&client).build());
    let runner = scheduler.clone();
    let sched_task = tokio::spawn(async move { runner.run().await });

    wait_until(
        Duration::from_secs(30),
        "8 ticks with three nodes",
        || async { client.inspector().schedule("fanout").await.unwrap().fired >= 8 },
    )
    .await;
    nodes.remove(2).stop().await; // node c leaves
    let cut = runs.lock().unwrap().iter().map(|r| r.1).max().unwrap();
    wait_until(
        Duration::from_secs(30),
        "4 more ticks with two nodes",
        || async { client.inspector().schedule("fanout").await.unwrap().fired >= 12 },
    )
    .await;
    client.inspector().pause_schedule("fanout").await.unwrap();
    wait_until(Duration::from_secs(30), "every job ran", || async {
        let c = client.inspector().counts("q").await.unwrap();
        c.states[&JobState::Pending] == 0 && c.states[&JobState::Active] == 0
    })
    .await;
    scheduler.shutdown_handle().shutdown();
    sched_task.await.unwrap().unwrap();
    for node in nodes {
        node.stop().await;
    }

    let runs = runs.lock().unwrap().clone();
    let mut by_tick: BTreeMap<i64, Vec<(String, u64)>> = BTreeMap::new();
    for (node, tick, task) in runs {
        by_tick.entry(tick).or_default().push((node, task));
    }
    let (mut three, mut with_three_nodes) = (0, 0);
    for (tick, runs) in &by_tick {
        let mut tasks: Vec<u64> = runs.iter().map(|r| r.1).collect();
        tasks.sort();
        assert_eq!(tasks, [0, 1, 2, 3], "every task of tick {tick} ran once");
        let nodes: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.0.as_str()).collect();
        if *tick <= cut {
            with_three_nodes += 1;
            if nodes.len() == 3 {
                three += 1;
            }
        } else {
            assert!(
                !nodes.contains("c"),
                "the stopped node ran nothing after it left"
            );
        }
    }
    // "Almost every tick": allow one tick (e.g. the first, or one hit by a slow wake-up).
    assert!(
        three + 1 >= with_three_nodes,
        "{three} of {with_three_nodes} ticks used all three nodes: {by_tick:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_skewed_clocks_fire_neither_early_nor_late() {
    let libfaketime = find_libfaketime();
    // The preload really moves a process's clock (otherwise this test would prove nothing).
    let date = std::process::Command::new("date")
        .arg("+%s")
        .env("LD_PRELOAD", &libfaketime)
        .env("FAKETIME", "+30s")
        .output()
        .unwrap();
    let skewed: i64 = String::from_utf8_lossy(&date.stdout)
        .trim()
        .parse()
        .unwrap();
    let real = jiff::Timestamp::now().as_second();
    assert!(
        (28..=32).contains(&(skewed - real)),
        "libfaketime did not skew the clock"
    );
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("skew", 1))
        .await
        .unwrap();
    // The only schedulers run 30 s ahead of and 30 s behind the real (and Redis') clock.
    // libfaketime is preloaded directly: the `faketime` wrapper forks, so signals would not
    // reach the scheduler.
    let skewed = |offset: &str| {
        spawn_child_worker(
            "schedule::child_worker_process",
            &redis.url(),
            &[("LD_PRELOAD", &libfaketime), ("FAKETIME", offset)],
        )
    };
    let mut nodes = vec![skewed("+30s"), skewed("-30s")];
    wait_until(Duration::from_secs(30), "6 ticks", || async {
        client.inspector().schedule("skew").await.unwrap().fired >= 6
    })
    .await;
    client.inspector().pause_schedule("skew").await.unwrap();
    for node in &nodes {
        signal(node, libc::SIGTERM);
    }
    for node in &mut nodes {
        assert!(
            tokio::task::block_in_place(|| node.wait())
                .unwrap()
                .success()
        );
    }
    let info = client.inspector().schedule("skew").await.unwrap();
    assert_eq!(info.skipped, 0, "{info:?}");
    let jobs = client
        .inspector()
        .jobs("q", JobState::Pending, &Default::default(), None, 100)
        .await
        .unwrap()
        .jobs;
    assert!(jobs.len() >= 6);
    for job in jobs {
        let tick: i64 = job.meta["scheduled_at"].parse().unwrap();
        let created = job.created_at.unwrap().as_millisecond();
        assert!(
            created >= tick,
            "fired {} ms early: {job:?}",
            tick - created
        );
        assert!(
            created - tick < 500,
            "fired {} ms late: {job:?}",
            created - tick
        );
    }
}

/// The multi-threaded libfaketime (Debian package libfaketime, pulled in by faketime).
fn find_libfaketime() -> String {
    let candidates = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .chain([std::path::PathBuf::from(
            "/usr/lib/faketime/libfaketimeMT.so.1",
        )]);
    for path in candidates {
        if path.exists() {
            return path.to_string_lossy().into_owned();
        }
    }
    panic!("this test needs libfaketime: apt-get install faketime (./dev test installs it)");
}

/// A queue fed only by a schedule is listed like any other (stats, finding a job by id), from
/// the moment the schedule exists.
#[tokio::test]
async fn a_queue_fed_only_by_a_schedule_is_listed() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let spec = ScheduleSpec::new("only", "cron-only", "@daily").task(Task::new("k", 0.into()));
    client.upsert_schedule(&spec).await.unwrap();
    let inspector = client.inspector();
    assert_eq!(inspector.queues().await.unwrap(), ["cron-only"]);
    let fired = client
        .inspector()
        .trigger_schedule("only")
        .await
        .unwrap()
        .jobs;
    let found = inspector.job(&fired[0].id).await.unwrap();
    assert_eq!(found.queue, "cron-only");
}

/// The scheduler reads the next schedule before it sleeps and fires it in one round trip at the
/// tick: a change made during that sleep must still win (the fire script's compare-and-set).
#[tokio::test]
async fn a_schedule_changed_or_paused_while_the_scheduler_sleeps_fires_as_changed() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client
        .upsert_schedule(&every_second("held", 1))
        .await
        .unwrap();
    let scheduler = std::sync::Arc::new(Scheduler::builder(&client).build());
    let runner = scheduler.clone();
    let task = tokio::spawn(async move { runner.run().await });
    wait_until(Duration::from_secs(10), "a first tick", || async {
        client.inspector().schedule("held").await.unwrap().fired >= 1
    })
    .await;

    // Mid-second, the scheduler sleeps with the next tick read; change its task's kind.
    at_offset_in_second(&client, 400).await;
    let changed = ScheduleSpec::new("held", "q", "@every 1s")
        .task(Task::new("changed", serde_json::Value::Null));
    assert_eq!(
        client.upsert_schedule(&changed).await.unwrap(),
        Upserted::Updated
    );
    let after = redis_now_ms(&client).await;
    let inspector = client.inspector();
    let later_ticks_kinds = || async {
        let mut kinds = Vec::new();
        for state in [JobState::Pending, JobState::Active, JobState::Completed] {
            for job in inspector
                .jobs("q", state, &Default::default(), None, 1000)
                .await
                .unwrap()
                .jobs
            {
                let tick: i64 = job.id.split(':').nth(2).unwrap().parse().unwrap();
                if tick > after {
                    kinds.push(job.kind);
                }
            }
        }
        kinds
    };
    wait_until(
        Duration::from_secs(10),
        "a tick after the change",
        || async { !later_ticks_kinds().await.is_empty() },
    )
    .await;
    let kinds = later_ticks_kinds().await;
    assert!(kinds.iter().all(|k| k == "changed"), "{kinds:?}");

    // Paused mid-second: the tick read before the pause does not fire.
    at_offset_in_second(&client, 400).await;
    inspector.pause_schedule("held").await.unwrap();
    let fired = inspector.schedule("held").await.unwrap().fired;
    let paused_at = redis_now_ms(&client).await;
    // Two tick instants pass (polling Redis' clock), then nothing more may have fired.
    wait_until(Duration::from_secs(10), "two ticks' time", || async {
        redis_now_ms(&client).await > paused_at + 2000
    })
    .await;
    assert_eq!(inspector.schedule("held").await.unwrap().fired, fired);
    scheduler.shutdown_handle().shutdown();
    task.await.unwrap().unwrap();
}
