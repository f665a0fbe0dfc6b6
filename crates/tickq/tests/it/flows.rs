//! Workflows run by real workers: the fan-in race, results flowing to children, failure
//! policies end to end.

use crate::common::{spawn, wait_until};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq::{
    Client, FlowState, Job, JobError, JobState, NewJob, ParentFailure, Step, Worker, Workflow,
};
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);
const Q: &str = "flows";

fn job(kind: &str) -> NewJob {
    NewJob::new(Q, kind)
}

/// What the handlers saw: per workflow, parents finished, and each child run with the number of
/// its workflow's parents that had finished when it started and the results it read.
#[derive(Default)]
struct Log {
    parents_done: HashMap<String, usize>,
    child_runs: HashMap<String, Vec<(usize, usize)>>,
}

/// 200 parents, one child, on 3 workers with their own clients, 50 times: each child runs
/// exactly once, after all 200 of its parents, and reads all 200 results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_child_runs_once_after_all_parents() {
    const PARENTS: usize = 200;
    const ROUNDS: usize = 50;
    let redis = TestRedis::builder().appendonly(false).start();
    let log = Arc::new(Mutex::new(Log::default()));
    let mut workers = Vec::new();
    for n in 0..3 {
        let client = Client::connect(&redis.url()).await.unwrap();
        let (l1, l2) = (log.clone(), log.clone());
        let w = Worker::builder(&client)
            .queue(Q, 1)
            .concurrency(16)
            .node(format!("node-{n}"))
            .handler("parent", move |job: Job| {
                let log = l1.clone();
                async move {
                    let flow = job.flow_id().unwrap().to_owned();
                    *log.lock().unwrap().parents_done.entry(flow).or_default() += 1;
                    Ok::<_, JobError>(job.step().unwrap().to_owned())
                }
            })
            .handler("child", move |job: Job| {
                let log = l2.clone();
                async move {
                    let flow = job.flow_id().unwrap().to_owned();
                    let done = log.lock().unwrap().parents_done.get(&flow).copied();
                    let results = job.parent_results().await.map_err(JobError::retry)?;
                    // Each parent's result is its own step id.
                    let read = results
                        .iter()
                        .filter(|(step, r)| r.as_deref() == Some(step.as_str()))
                        .count();
                    let mut log = log.lock().unwrap();
                    log.child_runs
                        .entry(flow)
                        .or_default()
                        .push((done.unwrap_or(0), read));
                    Ok::<_, JobError>(())
                }
            })
            .build()
            .unwrap();
        workers.push((spawn(w), client));
    }
    let client = Client::connect(&redis.url()).await.unwrap();
    for round in 0..ROUNDS {
        let id = format!("fan-in-{round}");
        let mut flow = Workflow::new(Q, "fan-in").id(&id);
        let parents: Vec<String> = (0..PARENTS).map(|p| format!("p{p}")).collect();
        for p in &parents {
            flow = flow.step(Step::new(p, job("parent")));
        }
        flow = flow.step(Step::new("child", job("child")).after(parents));
        assert!(client.submit_flow(flow).await.unwrap().created);
        wait_until(LIMIT, "the child ran", || async {
            log.lock().unwrap().child_runs.contains_key(&id)
        })
        .await;
    }
    let inspector = client.inspector();
    for round in 0..ROUNDS {
        let id = format!("fan-in-{round}");
        let info = inspector.flow(&id).await.unwrap();
        assert_eq!(info.state, FlowState::Succeeded, "{id}");
        assert_eq!(info.counts["completed"], PARENTS as u64 + 1, "{id}");
        assert_eq!(
            log.lock().unwrap().child_runs[&id],
            [(PARENTS, PARENTS)],
            "{id}: the child ran once, after all parents, with all their results"
        );
    }
    // Nothing is left to run anywhere (a second release would show up as pending or active).
    let counts = inspector.counts(Q).await.unwrap();
    for state in [JobState::Waiting, JobState::Pending, JobState::Active] {
        assert_eq!(counts.states[&state], 0, "{state}");
    }
    // Every step completed once (the completed index itself is capped at 10,000 jobs).
    assert_eq!(counts.processed, (ROUNDS * (PARENTS + 1)) as u64);
    for (w, _client) in workers {
        w.stop().await;
    }
}

/// A parent that dies cancels its `cancel` children at once (nothing left waiting), runs its
/// `run` children and skips its `skip` children, whose own children then run.
#[tokio::test]
async fn failure_policies_end_to_end() {
    let redis = TestRedis::builder().appendonly(false).start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let runs = Arc::new(Mutex::new(Vec::<String>::new()));
    let r = runs.clone();
    let w = Worker::builder(&client)
        .queue(Q, 1)
        .handler("ok", move |job: Job| {
            let runs = r.clone();
            async move {
                runs.lock().unwrap().push(job.step().unwrap().to_owned());
                Ok::<_, JobError>(())
            }
        })
        .handler("boom", |_job: Job| async move {
            Err::<(), _>(JobError::kill("boom"))
        })
        .build()
        .unwrap();
    let w = spawn(w);
    let flow = Workflow::new(Q, "policies")
        .id("policies")
        .step(Step::new("bad", job("boom")))
        .step(Step::new("cancel1", job("ok")).after(["bad"]))
        .step(Step::new("cancel2", job("ok")).after(["cancel1"]))
        .step(
            Step::new("run", job("ok"))
                .after(["bad"])
                .on_parent_failure(ParentFailure::Run),
        )
        .step(
            Step::new("skip", job("ok"))
                .after(["bad"])
                .on_parent_failure(ParentFailure::Skip),
        )
        .step(Step::new("after-skip", job("ok")).after(["skip"]));
    client.submit_flow(flow).await.unwrap();
    let inspector = client.inspector();
    wait_until(LIMIT, "the workflow ends", || async {
        inspector
            .flow("policies")
            .await
            .unwrap()
            .finished_at
            .is_some()
    })
    .await;
    let info = inspector.flow("policies").await.unwrap();
    assert_eq!(info.state, FlowState::Failed);
    let state = |s: &str| {
        info.steps
            .iter()
            .find(|v| v.id == s)
            .map(|v| (v.state.clone(), v.error.clone()))
            .unwrap()
    };
    assert_eq!(state("bad").0, "dead");
    assert_eq!(
        state("cancel1"),
        ("cancelled".into(), Some("parent step bad dead".into()))
    );
    assert_eq!(
        state("cancel2"),
        (
            "cancelled".into(),
            Some("parent step cancel1 cancelled".into())
        )
    );
    assert_eq!(state("run").0, "completed");
    assert_eq!(state("skip").0, "skipped");
    assert_eq!(state("after-skip").0, "completed");
    assert!(!info.counts.contains_key("waiting"));
    assert_eq!(
        client.inspector().counts(Q).await.unwrap().states[&JobState::Waiting],
        0
    );
    let mut ran = runs.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, ["after-skip", "run"]);
    w.stop().await;
}

/// A chain a -> b -> c on workers: each step starts only after its parent ended, and a
/// repeated submit of the same id creates nothing.
#[tokio::test]
async fn a_chain_runs_in_order_and_a_repeated_submit_creates_nothing() {
    let redis = TestRedis::builder().appendonly(false).start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let running = Arc::new(AtomicUsize::new(0));
    let (o, r) = (order.clone(), running.clone());
    let w = Worker::builder(&client)
        .queue(Q, 1)
        .concurrency(8)
        .handler("ok", move |job: Job| {
            let (order, running) = (o.clone(), r.clone());
            async move {
                assert_eq!(
                    running.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two steps at once"
                );
                tokio::task::yield_now().await;
                order.lock().unwrap().push(job.step().unwrap().to_owned());
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, JobError>(())
            }
        })
        .build()
        .unwrap();
    let flow = Workflow::new(Q, "chain")
        .id("chain")
        .step(Step::new("c", job("ok")).after(["b"]))
        .step(Step::new("b", job("ok")).after(["a"]))
        .step(Step::new("a", job("ok")));
    assert!(client.submit_flow(flow.clone()).await.unwrap().created);
    assert!(!client.submit_flow(flow).await.unwrap().created);
    let w = spawn(w);
    let inspector = client.inspector();
    wait_until(LIMIT, "the chain ends", || async {
        inspector.flow("chain").await.unwrap().state == FlowState::Succeeded
    })
    .await;
    assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
    w.stop().await;
}

/// A batch of 50 steps with all three callbacks on 3 workers, 20 times; in every other round
/// one step dies. on_complete runs once every time; on_success once when all succeeded and
/// never otherwise; on_failure once when one died and never otherwise; and each callback that
/// runs starts after all 50 steps of its batch ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_callbacks_fire_once_never_early_and_never_when_they_should_not() {
    const PARTS: usize = 50;
    const ROUNDS: usize = 20;
    let redis = TestRedis::builder().appendonly(false).start();
    // Per workflow: parts ended, and each callback run with the parts ended when it started.
    type Seen = (
        HashMap<String, usize>,
        HashMap<String, Vec<(String, usize)>>,
    );
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let mut workers = Vec::new();
    for n in 0..3 {
        let client = Client::connect(&redis.url()).await.unwrap();
        let (s1, s2) = (seen.clone(), seen.clone());
        let w = Worker::builder(&client)
            .queue(Q, 1)
            .concurrency(16)
            .node(format!("node-{n}"))
            .handler("part", move |job: Job| {
                let seen = s1.clone();
                async move {
                    let flow = job.flow_id().unwrap().to_owned();
                    let dies = job.payload_as::<bool>().unwrap_or(false);
                    *seen.lock().unwrap().0.entry(flow).or_default() += 1;
                    if dies {
                        return Err(JobError::kill("this part dies"));
                    }
                    Ok::<_, JobError>(())
                }
            })
            .handler("callback", move |job: Job| {
                let seen = s2.clone();
                async move {
                    let flow = job.flow_id().unwrap().to_owned();
                    let step = job.step().unwrap().to_owned();
                    let mut seen = seen.lock().unwrap();
                    let ended = seen.0.get(&flow).copied().unwrap_or(0);
                    seen.1.entry(flow).or_default().push((step, ended));
                    Ok::<_, JobError>(())
                }
            })
            .build()
            .unwrap();
        workers.push((spawn(w), client));
    }
    let client = Client::connect(&redis.url()).await.unwrap();
    let inspector = client.inspector();
    for round in 0..ROUNDS {
        let id = format!("batch-{round}");
        let failing = round % 2 == 1;
        let mut flow = Workflow::new(Q, "batch").id(&id);
        let parts: Vec<String> = (0..PARTS).map(|p| format!("p{p}")).collect();
        for (i, p) in parts.iter().enumerate() {
            let dies = failing && i == PARTS / 2;
            flow = flow.step(Step::new(
                p,
                job("part").payload(serde_json::json!(dies)).max_attempts(1),
            ));
        }
        for callback in ["done", "ok", "alert"] {
            flow = flow.step(Step::new(callback, job("callback")));
        }
        flow = flow.batch(
            tickq::Batch::new(parts)
                .on_complete("done")
                .on_success("ok")
                .on_failure("alert"),
        );
        assert!(client.submit_flow(flow).await.unwrap().created);
        let expected = if failing {
            FlowState::Failed
        } else {
            FlowState::Succeeded
        };
        wait_until(LIMIT, "the workflow ended", || async {
            inspector.flow(&id).await.unwrap().state == expected
        })
        .await;
        let info = inspector.flow(&id).await.unwrap();
        let state = |s: &str| {
            info.steps
                .iter()
                .find(|x| x.id == s)
                .map(|x| x.state.clone())
                .unwrap()
        };
        let mut runs = seen.lock().unwrap().1.get(&id).cloned().unwrap_or_default();
        runs.sort();
        if failing {
            assert_eq!(
                runs,
                [("alert".into(), PARTS), ("done".into(), PARTS)],
                "{id}"
            );
            assert_eq!(state("ok"), "cancelled", "{id}");
        } else {
            assert_eq!(runs, [("done".into(), PARTS), ("ok".into(), PARTS)], "{id}");
            assert_eq!(state("alert"), "skipped", "{id}");
        }
    }
    let counts = inspector.counts(Q).await.unwrap();
    for state in [JobState::Waiting, JobState::Pending, JobState::Active] {
        assert_eq!(counts.states[&state], 0, "{state}");
    }
    for (w, _client) in workers {
        w.stop().await;
    }
}

/// A step in another queue ended by hand (cancel, kill, delete) with no worker anywhere: the
/// inspector hands its end on at once, so the home and the other queues see it without
/// waiting for a worker's periodic relay (which no worker would run here).
#[tokio::test]
async fn a_step_ended_by_hand_in_another_queue_is_relayed_at_once() {
    let redis = TestRedis::builder().appendonly(false).start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let inspector = client.inspector();
    let flow = Workflow::new(Q, "by-hand")
        .id("by-hand")
        .step(Step::new("x", NewJob::new("elsewhere", "k")))
        .step(
            Step::new("after", NewJob::new("third", "k"))
                .after(["x"])
                .on_parent_failure(ParentFailure::Skip),
        )
        .step(Step::new("last", job("k")).after(["after"]));
    assert!(client.submit_flow(flow).await.unwrap().created);
    let state = |id: &str| {
        let inspector = inspector.clone();
        let id = id.to_owned();
        async move { inspector.job(&id).await.unwrap().state }
    };
    assert_eq!(state("flow:by-hand:x").await, JobState::Pending);

    inspector.cancel("flow:by-hand:x").await.unwrap();
    // No waiting: the skip went on through "third" and released "last" in the home queue.
    let info = inspector.flow("by-hand").await.unwrap();
    let states: Vec<(&str, &str)> = info
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("x", "cancelled"),
            ("after", "skipped"),
            ("last", "pending")
        ]
    );
    assert_eq!(state("flow:by-hand:last").await, JobState::Pending);
}
