//! tickq on a real local Redis Cluster (3 primaries; with a replica each for the failover
//! tests): every script and pipeline touches one hash slot, so queues spread over the nodes
//! and everything works as on one server.

use crate::common::{count, spawn, wait_until};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickq::{
    Client, Job, JobError, JobState, NewJob, QueueLimits, Rate, ScheduleSpec, Scheduler, Task,
    Worker,
};
use tickq_testkit::TestCluster;

const LIMIT: Duration = Duration::from_secs(30);

/// Queue names whose hash slots live on every node of the cluster.
fn queues_on_every_node(cluster: &TestCluster) -> Vec<String> {
    let mut conn = cluster.client().get_connection().unwrap();
    let mut by_node = BTreeSet::new();
    let mut queues = Vec::new();
    for i in 0..200 {
        let queue = format!("q{i}");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("tickq:{{{queue}}}:pending"))
            .query(&mut conn)
            .unwrap();
        let node = usize::from(slot) * 3 / 16384;
        if by_node.insert(node) {
            queues.push(queue);
        }
        if by_node.len() == 3 {
            break;
        }
    }
    assert_eq!(by_node.len(), 3);
    queues
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_schedules_locks_and_limits_work_on_a_cluster() {
    let cluster = TestCluster::start(TestCluster::DEFAULT_PRIMARIES);
    let client = Client::connect(&cluster.cluster_url()).await.unwrap();
    let queues = queues_on_every_node(&cluster);

    // Enqueue every way: bulk (the transaction path), one by one, with ids, unique, delayed.
    let mut expected = 0;
    for q in &queues {
        let bulk = (0..50)
            .map(|i| NewJob::new(q, "work").payload(i.into()))
            .collect();
        client.enqueue_bulk(bulk).await.unwrap();
        client
            .enqueue(NewJob::new(q, "work").id(format!("{q}-given")))
            .await
            .unwrap();
        let unique = || NewJob::new(q, "work").unique_for(Duration::from_secs(60));
        client.enqueue(unique()).await.unwrap();
        let dup = client.enqueue(unique()).await.unwrap_err();
        assert_eq!(dup.kind(), tickq::ErrorKind::AlreadyExists);
        client
            .enqueue(NewJob::new(q, "work").delay(Duration::from_millis(300)))
            .await
            .unwrap();
        expected += 53;
    }
    let inspector = client.inspector();
    let limits = QueueLimits {
        concurrency: Some(4),
        rate: Some(Rate::new(1000, Duration::from_secs(1))),
    };
    inspector.set_limits(&queues[0], limits).await.unwrap();
    assert_eq!(inspector.limits(&queues[0]).await.unwrap().limits, limits);

    let done = Arc::new(Mutex::new(Vec::new()));
    let d = done.clone();
    let mut builder = Worker::builder(&client).concurrency(16);
    for q in &queues {
        builder = builder.queue(q, 1);
    }
    let worker = builder
        .handler("work", move |job: Job| {
            let d = d.clone();
            async move {
                d.lock().unwrap().push(job.queue().to_owned());
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let worker = spawn(worker);
    wait_until(LIMIT, "every job completed", || async {
        let mut n = 0;
        for q in &queues {
            n += count(&client, q, JobState::Completed).await;
        }
        n == expected
    })
    .await;
    let stats = inspector.stats().await.unwrap().queues;
    assert_eq!(stats.len(), queues.len());
    assert!(stats.iter().all(|s| s.failed == 0));

    // Cron: leaderless firing on the queue's node.
    let spec = ScheduleSpec::new("tick", &queues[1], "@every 1s").task(Task::new("work", 0.into()));
    client.upsert_schedule(&spec).await.unwrap();
    let scheduler = Scheduler::builder(&client).build();
    let handle = scheduler.shutdown_handle();
    let running = tokio::spawn(async move { scheduler.run().await });
    wait_until(LIMIT, "two ticks ran", || async {
        count(&client, &queues[1], JobState::Completed).await >= 53 + 2
    })
    .await;
    handle.shutdown();
    running.await.unwrap().unwrap();
    worker.stop().await;

    // Locks and fences.
    let first = client.lock("nightly").try_acquire().await.unwrap().unwrap();
    assert!(
        client
            .lock("nightly")
            .try_acquire()
            .await
            .unwrap()
            .is_none()
    );
    let fence = first.fence();
    first.release().await.unwrap();
    let second = client.lock("nightly").try_acquire().await.unwrap().unwrap();
    assert!(second.fence() > fence);
    second.release().await.unwrap();
}

#[tokio::test]
async fn a_cluster_url_with_no_cluster_behind_it_is_unavailable() {
    let err = Client::connect("redis-cluster://127.0.0.1:1,127.0.0.1:2")
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.kind(), tickq::ErrorKind::Unavailable, "{err}");
}

/// Workflows on a cluster: one per queue, queues on every node; each runs to the end, its
/// fan-in step once, and the inspector finds and lists each (its lookups ask every queue's
/// slot).
#[tokio::test(flavor = "multi_thread")]
async fn workflows_run_on_a_cluster() {
    let cluster = TestCluster::start(TestCluster::DEFAULT_PRIMARIES);
    let client = Client::connect(&cluster.cluster_url()).await.unwrap();
    let queues = queues_on_every_node(&cluster);
    let runs = Arc::new(Mutex::new(Vec::<String>::new()));
    let r = runs.clone();
    let mut builder = Worker::builder(&client)
        .concurrency(8)
        .handler("step", move |job: Job| {
            let runs = r.clone();
            async move {
                let parents = job.parent_results().await.map_err(JobError::retry)?;
                runs.lock()
                    .unwrap()
                    .push(format!("{} {}", job.id(), parents.len()));
                Ok::<_, JobError>(job.step().unwrap_or_default().to_owned())
            }
        });
    for q in &queues {
        builder = builder.queue(q, 1);
        let mut flow = tickq::Workflow::new(q, "fan-in").id(format!("f-{q}"));
        for p in 0..5 {
            flow = flow.step(tickq::Step::new(format!("p{p}"), NewJob::new(q, "step")));
        }
        let parents: Vec<String> = (0..5).map(|p| format!("p{p}")).collect();
        flow = flow.step(tickq::Step::new("join", NewJob::new(q, "step")).after(parents));
        assert!(client.submit_flow(flow).await.unwrap().created);
    }
    let w = spawn(builder.build().unwrap());
    let inspector = client.inspector();
    for q in &queues {
        let id = format!("f-{q}");
        wait_until(LIMIT, "the workflow succeeds", || async {
            inspector.flow(&id).await.unwrap().state == tickq::FlowState::Succeeded
        })
        .await;
        let joins: Vec<String> = runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(&format!("flow:{id}:join ")))
            .cloned()
            .collect();
        assert_eq!(joins, [format!("flow:{id}:join 5")]);
    }
    // The list reads each queue's index in its own slot.
    let list = inspector.flows(None, 100).await.unwrap();
    let mut listed: Vec<String> = list.flows.iter().map(|f| f.id.clone()).collect();
    listed.sort();
    let mut expected: Vec<String> = queues.iter().map(|q| format!("f-{q}")).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(
        list.flows
            .iter()
            .all(|f| f.state == tickq::FlowState::Succeeded)
    );
    w.stop().await;
}

/// How the primary of the busy queue's slot is replaced in [`failover_under_load`].
#[derive(Clone, Copy, Debug)]
enum Replace {
    /// `CLUSTER FAILOVER` on its replica: the primary stops taking writes, the replica
    /// catches up and takes over, the old primary turns into its replica.
    Failover,
    /// `CLUSTER FAILOVER FORCE`: the replica takes over without waiting for the primary,
    /// which keeps taking writes until it learns of the new primary (as after a partition).
    Force,
    /// `kill -9` of the primary: the replica elects itself once the node timeout (2 s) passes.
    Kill,
}

/// What a primary replacement under load did.
struct FailoverRun {
    /// The fence of each run, per job id.
    runs: HashMap<String, Vec<u64>>,
    /// When each run started (a claim went through).
    starts: Vec<Instant>,
    /// When the fault began, and when the replica was a primary to every node.
    fault_at: Instant,
    promoted_at: Instant,
    stats: tickq::WorkerStats,
}

/// Runs per job id, and when each run started, as the handler saw them.
type Seen = (HashMap<String, Vec<u64>>, Vec<Instant>);

const FAILOVER_JOBS: usize = 1000;
const FAILOVER_CONCURRENCY: usize = 8;

/// 1,000 jobs of 10 ms, all in one queue whose slot is on node 0, on a worker of concurrency
/// 8; once a quarter have started, node 0 is replaced by its replica. Every run is counted in
/// the handler, outside Redis.
async fn failover_under_load(replace: Replace, ack_replicas: bool) -> FailoverRun {
    let mut cluster = TestCluster::start_with_replicas(TestCluster::DEFAULT_PRIMARIES);
    let replica = cluster.replica_of(0);
    let queue = queues_on_every_node(&cluster).remove(0);
    let client = Client::connect(&cluster.cluster_url()).await.unwrap();
    let jobs = (0..FAILOVER_JOBS).map(|i| NewJob::new(&queue, "work").id(format!("job-{i}")));
    client.enqueue_bulk(jobs.collect()).await.unwrap();
    // The replica has every job before the run: enqueues lost with a primary are not what
    // this test is about (docs/operations.md says what a failover can lose).
    let mut direct = cluster.node(0).sync_conn();
    redis::cmd("SET")
        .arg(format!("{{{queue}}}sync"))
        .arg(1)
        .exec(&mut direct)
        .unwrap();
    let replicated: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut direct)
        .unwrap();
    assert_eq!(replicated, 1);

    let runs: Arc<Mutex<Seen>> = Arc::default();
    let seen = runs.clone();
    // A client of its own, so that the worker's connections have to follow by themselves.
    let worker_client = Client::connect(&cluster.cluster_url()).await.unwrap();
    let mut builder = Worker::builder(&worker_client)
        .concurrency(FAILOVER_CONCURRENCY)
        .queue(&queue, 1)
        .lease(Duration::from_secs(5))
        .recover_interval(Duration::from_millis(500))
        .handler("work", move |job: Job| {
            let seen = seen.clone();
            async move {
                {
                    let mut seen = seen.lock().unwrap();
                    seen.0
                        .entry(job.id().to_owned())
                        .or_default()
                        .push(job.fence());
                    seen.1.push(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, JobError>(())
            }
        });
    if ack_replicas {
        builder = builder.ack_replicas(1, Duration::from_millis(500));
    }
    let worker = spawn(builder.build().unwrap());
    wait_until(LIMIT, "a quarter of the jobs ran", || async {
        runs.lock().unwrap().0.len() >= FAILOVER_JOBS / 4
    })
    .await;

    let fault_at = Instant::now();
    let (cluster, promoted_at) = tokio::task::spawn_blocking(move || {
        match replace {
            Replace::Failover => cluster.failover(replica),
            Replace::Force => cluster.force_failover(replica),
            Replace::Kill => {
                cluster.kill_node(0);
                cluster.wait_for_primary(replica);
            }
        }
        (cluster, Instant::now())
    })
    .await
    .unwrap();
    assert_eq!(cluster.role(replica), "master");

    wait_until(LIMIT, "every job completed", || async {
        count(&client, &queue, JobState::Completed).await == FAILOVER_JOBS as u64
    })
    .await;
    let stats = worker.stop().await;
    let (runs, starts) = runs.lock().unwrap().clone();
    FailoverRun {
        runs,
        starts,
        fault_at,
        promoted_at,
        stats,
    }
}

fn check_failover_run(replace: Replace, ack_replicas: bool, run: &FailoverRun) {
    let mut twice = Vec::new();
    // Runs that got the fence of an earlier run of the job: its claim vanished with the old
    // primary, and the new primary handed out the same number again (must not happen).
    let mut fence_again = 0;
    for i in 0..FAILOVER_JOBS {
        let id = format!("job-{i}");
        let fences = run.runs.get(&id).cloned().unwrap_or_default();
        assert!(!fences.is_empty(), "{id} never ran");
        if fences.len() > 1 {
            let distinct: std::collections::BTreeSet<_> = fences.iter().collect();
            fence_again += fences.len() - distinct.len();
            twice.push((id, fences));
        }
    }
    let ms = |d: Duration| d.as_millis();
    let first_after = |t: Instant| run.starts.iter().copied().filter(|s| *s > t).min();
    let stall = run
        .starts
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default();
    eprintln!(
        "cluster {replace:?}, ack_replicas {ack_replicas}: {} of {FAILOVER_JOBS} jobs ran more \
         than once (first, with their fences: {:?}), {fence_again} runs under a fence an \
         earlier run had; promotion took {} ms; first claim {:?} ms after the fault and \
         {:?} ms after the promotion; longest time without a claim {} ms; {:?}",
        twice.len(),
        &twice[..twice.len().min(10)],
        ms(run.promoted_at - run.fault_at),
        first_after(run.fault_at).map(|s| ms(s - run.fault_at)),
        first_after(run.promoted_at).map(|s| ms(s - run.promoted_at)),
        ms(stall),
        run.stats
    );
    match replace {
        // The old primary went on taking claims for a moment after the replica took over
        // (a partition's window): those claims vanished, so their jobs ran again, and more
        // than the jobs in flight may. What `ack_replicas` guarantees is that no ack vanished:
        // an ack the cut-off primary took failed its WAIT and went to the new primary, so no
        // job sat active there until its lease ran out (without it, 8 did in each of two
        // runs: docs/reliability.md).
        Replace::Force => {
            assert!(ack_replicas);
            assert_eq!(run.stats.recovered, 0, "acks vanished: {:?}", run.stats);
        }
        Replace::Failover | Replace::Kill => {
            assert!(
                twice.len() <= FAILOVER_CONCURRENCY,
                "only the jobs in flight at the switch may run twice: {} did",
                twice.len()
            );
        }
    }
    // Fences are at least Redis' clock in µs (reserve_fences in prelude.lua), so not even a
    // forced takeover that lost claims hands one out again (before: 20 of 24 reruns did).
    assert_eq!(fence_again, 0, "a fence was handed out twice");
    // Measured 1-52 ms; 0.6-1.2 s after a kill -9 before `ClusterConn` held requests for the
    // dead node's slots. Half a second leaves room for a loaded machine and still tells them
    // apart.
    let after = first_after(run.promoted_at).expect("jobs ran after the promotion");
    assert!(
        after - run.promoted_at < Duration::from_millis(500),
        "the worker claimed again only {} ms after the promotion",
        ms(after - run.promoted_at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_under_load_loses_no_job_and_reruns_at_most_the_jobs_in_flight() {
    let run = failover_under_load(Replace::Failover, false).await;
    check_failover_run(Replace::Failover, false, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_primary_killed_under_load_is_replaced_promptly_and_no_job_is_lost() {
    let run = failover_under_load(Replace::Kill, false).await;
    check_failover_run(Replace::Kill, false, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_forced_failover_with_replicated_acks_loses_no_job_and_no_ack() {
    let run = failover_under_load(Replace::Force, true).await;
    check_failover_run(Replace::Force, true, &run);
}

/// Workflows whose steps are in three queues, one on each primary, run by three workers with
/// their own clients: a fan-in across the queues, 10 times (each child exactly once, after
/// all its parents, reading every parent's result), and a chain a -> b -> c through the three
/// queues. Then an end no worker's fast path relays (a waiting step cancelled by hand, in its
/// queue alone): the inspector that cancelled it hands it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_across_queues_run_on_a_cluster() {
    const PARENTS: usize = 30;
    const ROUNDS: usize = 10;
    let cluster = TestCluster::start(TestCluster::DEFAULT_PRIMARIES);
    let queues = queues_on_every_node(&cluster);
    // (workflow, parents done when a child started, results it read)
    let done: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let children: Arc<Mutex<Vec<(String, usize, usize)>>> = Arc::default();
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for n in 0..3 {
        let client = Client::connect(&cluster.cluster_url()).await.unwrap();
        let (d1, d2, c, o) = (done.clone(), done.clone(), children.clone(), order.clone());
        let mut builder = Worker::builder(&client)
            .concurrency(8)
            .node(format!("node-{n}"))
            .handler("parent", move |job: Job| {
                let done = d1.clone();
                async move {
                    let flow = job.flow_id().unwrap().to_owned();
                    *done.lock().unwrap().entry(flow).or_default() += 1;
                    Ok::<_, JobError>(job.step().unwrap().to_owned())
                }
            })
            .handler("child", move |job: Job| {
                let (done, children) = (d2.clone(), c.clone());
                async move {
                    let flow = job.flow_id().unwrap().to_owned();
                    let before = done.lock().unwrap().get(&flow).copied().unwrap_or(0);
                    let results = job.parent_results().await.map_err(JobError::retry)?;
                    let read = results
                        .iter()
                        .filter(|(step, r)| r.as_deref() == Some(step.as_str()))
                        .count();
                    children.lock().unwrap().push((flow, before, read));
                    Ok::<_, JobError>(())
                }
            })
            .handler("link", move |job: Job| {
                let order = o.clone();
                async move {
                    order.lock().unwrap().push(job.step().unwrap().to_owned());
                    Ok::<_, JobError>(())
                }
            });
        for q in &queues {
            builder = builder.queue(q, 1);
        }
        workers.push((spawn(builder.build().unwrap()), client));
    }
    let client = Client::connect(&cluster.cluster_url()).await.unwrap();
    let inspector = client.inspector();
    for round in 0..ROUNDS {
        let id = format!("x-{round}");
        // Home in the first queue, parents over all three, the child in the last.
        let mut flow = tickq::Workflow::new(&queues[0], "fan-in").id(&id);
        let parents: Vec<String> = (0..PARENTS).map(|p| format!("p{p}")).collect();
        for (p, step) in parents.iter().enumerate() {
            let job = NewJob::new(&queues[p % 3], "parent");
            flow = flow.step(tickq::Step::new(step, job));
        }
        let child = NewJob::new(&queues[2], "child");
        flow = flow.step(tickq::Step::new("child", child).after(parents));
        assert!(client.submit_flow(flow).await.unwrap().created);
    }
    let chain = tickq::Workflow::new(&queues[1], "chain")
        .id("chain")
        .step(tickq::Step::new("a", NewJob::new(&queues[0], "link")))
        .step(tickq::Step::new("b", NewJob::new(&queues[1], "link")).after(["a"]))
        .step(tickq::Step::new("c", NewJob::new(&queues[2], "link")).after(["b"]));
    assert!(client.submit_flow(chain).await.unwrap().created);
    for round in 0..ROUNDS {
        let id = format!("x-{round}");
        wait_until(LIMIT, "the cross-queue workflow succeeds", || async {
            inspector.flow(&id).await.unwrap().state == tickq::FlowState::Succeeded
        })
        .await;
        let runs: Vec<(usize, usize)> = children
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, _, _)| *f == id)
            .map(|(_, before, read)| (*before, *read))
            .collect();
        assert_eq!(
            runs,
            [(PARENTS, PARENTS)],
            "{id}: once, after all, with every result"
        );
    }
    wait_until(LIMIT, "the chain succeeds", || async {
        inspector.flow("chain").await.unwrap().state == tickq::FlowState::Succeeded
    })
    .await;
    assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
    let info = inspector.flow("chain").await.unwrap();
    let step_queues: Vec<&str> = info.steps.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(
        step_queues,
        queues.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // A parent that ends by hand in its own queue: no worker's fast path runs for it; the
    // inspector that cancelled it relays its end at once (the periodic relay is the fallback,
    // tested in broker/tests/flow_cross.rs). Its queue is paused, so no worker takes it first.
    inspector.pause_queue(&queues[1]).await.unwrap();
    let flow = tickq::Workflow::new(&queues[0], "by-hand")
        .id("by-hand")
        .step(tickq::Step::new("gate", NewJob::new(&queues[0], "link")).after(["never"]))
        .step(tickq::Step::new("never", NewJob::new(&queues[0], "link")).after(["x"]))
        .step(tickq::Step::new("x", NewJob::new(&queues[1], "link")))
        .step(
            tickq::Step::new("after", NewJob::new(&queues[2], "link"))
                .after(["x"])
                .on_parent_failure(tickq::ParentFailure::Run),
        );
    assert!(client.submit_flow(flow).await.unwrap().created);
    inspector.cancel("flow:by-hand:x").await.unwrap();
    wait_until(LIMIT, "the by-hand workflow ends", || async {
        inspector.flow("by-hand").await.unwrap().state == tickq::FlowState::Failed
    })
    .await;
    let info = inspector.flow("by-hand").await.unwrap();
    let states: Vec<(&str, &str)> = info
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("gate", "cancelled"),
            ("never", "cancelled"),
            ("x", "cancelled"),
            ("after", "completed")
        ]
    );
    inspector.resume_queue(&queues[1]).await.unwrap();
    for (w, _) in workers {
        w.stop().await;
    }
}
