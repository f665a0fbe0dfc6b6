//! tickq on a real local Redis Cluster (3 primaries): every script and pipeline touches one
//! hash slot, so queues spread over the nodes and everything works as on one server.

use crate::common::{count, spawn, wait_until};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
        .err()
        .expect("nothing listens there");
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
