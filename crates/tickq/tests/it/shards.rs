//! Sharded queues: one logical queue stored as K sub-queues, on one Redis and on a real local
//! 3-master Redis Cluster, where the shards spread over every master.

use crate::common::{spawn, wait_until};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq::{Client, ErrorKind, Job, JobError, JobState, NewJob, QueueLimits, Rate, Worker};
use tickq_testkit::{TestCluster, TestRedis};

const LIMIT: Duration = Duration::from_secs(60);

/// Ids of the jobs a worker ran, as its handler saw them (with the queue it reported).
type Ran = Arc<Mutex<Vec<(String, String)>>>;

fn recording_worker(client: &Client, queue: &str, shards: u32, ran: &Ran) -> Worker {
    let r = ran.clone();
    Worker::builder(client)
        .sharded_queue(queue, 1, shards)
        .concurrency(32)
        .lease(Duration::from_secs(2))
        .handler("work", move |job: Job| {
            let r = r.clone();
            async move {
                r.lock()
                    .unwrap()
                    .push((job.id().to_owned(), job.queue().to_owned()));
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap()
}

/// Every job done: nothing waits or runs in any shard, and each id ran at least once.
async fn wait_all_done(client: &Client, queue: &str, ids: &HashSet<String>, ran: &Ran) {
    let inspector = client.inspector();
    wait_until(LIMIT, "every job ran", || async {
        let seen: HashSet<String> = ran
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        ids.is_subset(&seen)
    })
    .await;
    wait_until(LIMIT, "nothing left waiting or running", || async {
        // During a failover some shard may not answer for a while.
        let Ok(c) = inspector.counts(queue).await else {
            return false;
        };
        [
            JobState::Scheduled,
            JobState::Pending,
            JobState::Active,
            JobState::Retry,
            JobState::Dead,
        ]
        .iter()
        .all(|s| c.states[s] == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_queue_on_one_redis_is_one_queue() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    client.shard_queue("hot", 4).await.unwrap();
    // Idempotent for the same count; another count is refused, and so is "not sharded".
    client.shard_queue("hot", 4).await.unwrap();
    let err = client.shard_queue("hot", 3).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("4 shard"), "{err}");
    let err = client.shard_queue("hot", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(
        client.shard_queue("hot", 0).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    // Bulk (round robin), one by one, with ids, by shard key, unique across shards.
    let mut ids = HashSet::new();
    let bulk: Vec<NewJob> = (0..400)
        .map(|i| NewJob::new("hot", "work").payload(i.into()))
        .collect();
    for e in client.enqueue_bulk(bulk).await.unwrap() {
        assert_eq!(e.queue, "hot");
        assert!(e.created);
        ids.insert(e.id);
    }
    let given = client
        .enqueue(NewJob::new("hot", "work").id("given-1"))
        .await
        .unwrap();
    assert_eq!(given.queue, "hot");
    ids.insert(given.id);
    let again = client
        .enqueue(NewJob::new("hot", "work").id("given-1"))
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    let unique = || {
        NewJob::new("hot", "work")
            .unique_for(Duration::from_secs(60))
            .unique_key("customer-9")
    };
    ids.insert(client.enqueue(unique()).await.unwrap().id);
    for _ in 0..5 {
        let dup = client.enqueue(unique()).await.unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::AlreadyExists, "{dup}");
    }
    let keyed = client
        .enqueue_bulk(
            (0..20)
                .map(|i| {
                    NewJob::new("hot", "work")
                        .shard_key("order-7")
                        .payload(i.into())
                })
                .collect(),
        )
        .await
        .unwrap();
    ids.extend(keyed.iter().map(|e| e.id.clone()));
    let err = client.enqueue(unique().shard_key("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = client
        .enqueue(NewJob::new("hot#1", "work"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    let inspector = client.inspector();
    // One queue in the list, with every job counted; the shards share them round robin.
    assert_eq!(inspector.queues().await.unwrap(), ["hot"]);
    let counts = inspector.counts("hot").await.unwrap();
    assert_eq!(counts.states[&JobState::Pending], ids.len() as u64);
    let shards = inspector.shards("hot").await.unwrap();
    assert_eq!(shards.len(), 5, "the base queue and four shards");
    assert_eq!(shards[0].shard, None);
    assert_eq!(shards[0].counts.states[&JobState::Pending], 0);
    for s in &shards[1..] {
        let pending = s.counts.states[&JobState::Pending];
        assert!((100..=122).contains(&pending), "{s:?}");
        assert!(s.counts.queue.starts_with("hot#"), "{s:?}");
    }
    // Jobs with one shard key are in one shard, in order.
    let holder = shards
        .iter()
        .find(|s| s.counts.states[&JobState::Pending] >= 120)
        .expect("the keyed jobs share a shard");
    let page = inspector
        .jobs(
            &holder.counts.queue,
            JobState::Pending,
            &Default::default(),
            None,
            1000,
        )
        .await;
    assert!(page.is_err(), "a shard's name is not a queue name");

    // Lookups by id, with or without the queue, find the job in its shard.
    let job = inspector.job("given-1").await.unwrap();
    assert_eq!(job.queue, "hot");
    assert_eq!(client.job("hot", "given-1").await.unwrap().queue, "hot");
    let acted = inspector.kill("given-1").await.unwrap();
    assert_eq!(acted.queue, "hot");
    assert_eq!(
        inspector.retry("given-1").await.unwrap().state,
        Some(JobState::Pending)
    );

    // Pages walk every shard once, with a cursor across them.
    let mut listed = HashSet::new();
    let mut order = Vec::new();
    let mut cursor = None;
    loop {
        let page = inspector
            .jobs(
                "hot",
                JobState::Pending,
                &Default::default(),
                cursor.as_deref(),
                97,
            )
            .await
            .unwrap();
        assert!(page.jobs.iter().all(|j| j.queue == "hot"));
        for j in page.jobs {
            order.push(j.id.clone());
            assert!(listed.insert(j.id), "listed twice");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(listed, ids);
    let keyed_ids: Vec<String> = keyed.iter().map(|e| e.id.clone()).collect();
    let keyed_order: Vec<String> = order
        .into_iter()
        .filter(|id| keyed_ids.contains(id))
        .collect();
    assert_eq!(keyed_order, keyed_ids, "one shard key keeps its order");

    // Limits split per shard and add back up; below the shard count they are refused.
    let limits = QueueLimits {
        concurrency: Some(10),
        rate: Some(Rate::new(1001, Duration::from_secs(1))),
    };
    assert_eq!(
        inspector.set_limits("hot", limits).await.unwrap().limits,
        limits
    );
    assert_eq!(inspector.limits("hot").await.unwrap().limits, limits);
    let parts: Vec<u32> = inspector.shards("hot").await.unwrap()[1..]
        .iter()
        .map(|s| s.counts.limits.concurrency.unwrap())
        .collect();
    assert_eq!(parts, [3, 3, 2, 2]);
    let low = QueueLimits {
        concurrency: Some(3),
        rate: None,
    };
    let err = inspector.set_limits("hot", low).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    inspector
        .set_limits("hot", QueueLimits::default())
        .await
        .unwrap();

    // Pause holds every shard; a worker of the wrong count refuses to start.
    assert!(inspector.pause_queue("hot").await.unwrap().changed);
    assert!(
        inspector
            .shards("hot")
            .await
            .unwrap()
            .iter()
            .all(|s| s.counts.paused)
    );
    let wrong = Worker::builder(&client)
        .queue("hot", 1)
        .handler("work", |_job: Job| async { Ok::<_, JobError>(()) })
        .build()
        .unwrap();
    assert_eq!(wrong.run().await.unwrap_err().kind(), ErrorKind::Conflict);

    let ran: Ran = Arc::default();
    let worker = spawn(recording_worker(&client, "hot", 4, &ran));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ran.lock().unwrap().is_empty(), "paused: nothing starts");
    inspector.resume_queue("hot").await.unwrap();
    wait_all_done(&client, "hot", &ids, &ran).await;
    worker.stop().await;
    let ran = ran.lock().unwrap().clone();
    assert!(
        ran.iter().all(|(_, q)| q == "hot"),
        "handlers see the queue"
    );
    assert_eq!(ran.len(), ids.len(), "each job ran once");
    let counts = inspector.counts("hot").await.unwrap();
    assert_eq!(counts.processed, ids.len() as u64);
    let stats = inspector.stats().await.unwrap();
    assert_eq!(stats.queues.len(), 1);
    assert_eq!(stats.queues[0].processed, ids.len() as u64);
}

/// Jobs a producer sent to the base queue (before the queue was sharded) still run.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_from_before_sharding_still_run() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let before = client.enqueue(NewJob::new("q", "work")).await.unwrap();
    // Another process declares the queue; this client still believes it is not sharded.
    let other = Client::connect(&redis.url()).await.unwrap();
    other.shard_queue("q", 3).await.unwrap();
    let stale = client.enqueue(NewJob::new("q", "work")).await.unwrap();
    let fresh = other.enqueue(NewJob::new("q", "work")).await.unwrap();
    let ids: HashSet<String> = [before.id, stale.id, fresh.id].into();
    let ran: Ran = Arc::default();
    let worker = spawn(recording_worker(&other, "q", 3, &ran));
    wait_all_done(&other, "q", &ids, &ran).await;
    worker.stop().await;
}

/// How many jobs the cluster test runs (the 100,000-job run is `tickq-bench --cluster 3
/// sharded`, see docs/benchmarks.md: a debug build on a shared 2-core machine needs longer).
const CLUSTER_JOBS: usize = 50_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_queue_spreads_over_every_master_of_a_cluster() {
    let cluster = TestCluster::start(TestCluster::DEFAULT_PRIMARIES);
    let client = Client::connect(&cluster.cluster_url()).await.unwrap();
    client.shard_queue("hot", 3).await.unwrap();
    let mut ids = HashSet::new();
    let jobs: Vec<NewJob> = (0..CLUSTER_JOBS)
        .map(|i| NewJob::new("hot", "work").payload(i.into()))
        .collect();
    for e in client.enqueue_bulk(jobs).await.unwrap() {
        ids.insert(e.id);
    }
    assert_eq!(ids.len(), CLUSTER_JOBS);

    let ran: Ran = Arc::default();
    let worker = spawn(recording_worker(&client, "hot", 3, &ran));
    wait_all_done(&client, "hot", &ids, &ran).await;
    worker.stop().await;

    assert_eq!(ran.lock().unwrap().len(), CLUSTER_JOBS, "each job ran once");
    let per_master = per_master_processed(&client, &cluster).await;
    println!("processed per master: {per_master:?}");
    let even = CLUSTER_JOBS as f64 / 3.0;
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    for (master, n) in &per_master {
        let share = *n as f64 / even;
        assert!(
            (0.8..=1.2).contains(&share),
            "master {master}: {n} of {CLUSTER_JOBS}"
        );
    }
    assert_eq!(per_master.values().sum::<u64>(), CLUSTER_JOBS as u64);
}

/// Jobs processed by each master (by the slot of each shard and the master's slot range).
async fn per_master_processed(client: &Client, cluster: &TestCluster) -> BTreeMap<usize, u64> {
    let mut per_master = BTreeMap::new();
    for s in client.inspector().shards("hot").await.unwrap() {
        *per_master.entry(cluster.slot_owner(s.slot)).or_default() += s.counts.processed;
    }
    per_master
}

/// A master dies mid-run and its replica takes over: every job Redis had replicated runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_failover_mid_run_loses_no_replicated_job() {
    let mut cluster = TestCluster::start_with_replicas(TestCluster::DEFAULT_PRIMARIES);
    let client = Client::connect(&cluster.cluster_url()).await.unwrap();
    client.shard_queue("hot", 3).await.unwrap();
    const JOBS: usize = 6000;
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|i| NewJob::new("hot", "work").payload(i.into()))
        .collect();
    let ids: HashSet<String> = client
        .enqueue_bulk(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    // What Redis kept: everything, once the replicas have it.
    cluster.wait_replicated();

    let ran: Ran = Arc::default();
    let worker = spawn(recording_worker(&client, "hot", 3, &ran));
    wait_until(LIMIT, "a sixth of the jobs ran", || async {
        ran.lock().unwrap().len() >= JOBS / 6
    })
    .await;
    let ran_before_kill = ran.lock().unwrap().len();
    assert!(ran_before_kill < JOBS / 2, "the kill comes mid-run");
    cluster.kill_node(0);
    wait_all_done(&client, "hot", &ids, &ran).await;
    worker.stop().await;
    // Master 0's shard finished on its promoted replica (node 3).
    let role: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut cluster.node(3).sync_conn())
        .unwrap();
    assert!(role.contains("role:master"), "{role}");
    let runs = ran.lock().unwrap().len();
    println!("{JOBS} jobs, {runs} runs (a run whose ack the dead master did not pass on repeats)");
}
