//! Property test of workflows against a real Redis: random DAGs (up to 50 steps, random
//! policies, each step in one of three queues) run by random completions, failures and lease
//! expiries, with the relay between the queues run at random moments (late, or not until
//! nothing else can happen). After every case:
//!
//! - every step ended exactly once (its `e:` is written, its job's state is the final state
//!   that end names), and nothing is left waiting, pending or active;
//! - no step was ever claimed before all its parents had ended, and an `only_if_failed` step
//!   (a batch's on_failure) only when one of them had failed;
//! - the workflow ended (`finished` set) and its hash carries a TTL no longer than its keep;
//! - it is in the queue's workflow index until its retention runs out, and once it has (and
//!   the janitor ran) no key of it is left and no index names it.

use super::{KEEP, Q};
use crate::broker::*;
use crate::flow::{ParentFailure, Step, Workflow, step_job_id};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tickq_testkit::TestRedis;

/// Per step: two parent picks, how many of them to use (0 to 2), the policy (an index), its
/// queue (an index into [`QUEUES`]; the first is the workflow's home).
type StepGene = (u8, u8, u8, u8, u8);

const QUEUES: [&str; 3] = [Q, "q2", "q3"];

/// A random DAG: step i has up to two parents among the steps before it, and a policy; and
/// the choices that drive the run.
fn dags() -> impl Strategy<Value = (Vec<StepGene>, Vec<u8>)> {
    (
        prop::collection::vec((any::<u8>(), any::<u8>(), 0..3u8, 0..4u8, 0..3u8), 1..50),
        prop::collection::vec(any::<u8>(), 400),
    )
}

fn build(steps: &[StepGene]) -> (Workflow, Vec<(Vec<String>, ParentFailure)>) {
    let mut flow = Workflow::new(Q, "prop").id("p");
    let mut parents_of = Vec::new();
    for (i, &(a, b, n, policy, queue)) in steps.iter().enumerate() {
        let mut parents: Vec<String> = Vec::new();
        if i > 0 {
            for pick in [a, b].into_iter().take(n as usize) {
                let p = format!("s{}", pick as usize % i);
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
        }
        let mut policy = [
            ParentFailure::Cancel,
            ParentFailure::Run,
            ParentFailure::Skip,
            ParentFailure::OnlyIfFailed,
        ][policy as usize];
        if parents.is_empty() && policy == ParentFailure::OnlyIfFailed {
            policy = ParentFailure::Cancel;
        }
        flow = flow.step(
            Step::new(
                format!("s{i}"),
                NewJob::new(QUEUES[queue as usize], "work").max_attempts(2),
            )
            .after(parents.clone())
            .on_parent_failure(policy),
        );
        parents_of.push((parents, policy));
    }
    (flow, parents_of)
}

#[test]
fn random_dags_end_every_step_once_and_start_none_early() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = TestRedis::builder().appendonly(false).start();
    let broker = rt
        .block_on(Broker::connect(&redis.url(), &Default::default()))
        .unwrap();
    let config = Config {
        cases: 16,
        failure_persistence: None,
        max_shrink_iters: 500,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&dags(), |(steps, choices)| {
        rt.block_on(run_case(&broker, steps, choices))
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

async fn run_case(
    broker: &Broker,
    steps: Vec<StepGene>,
    choices: Vec<u8>,
) -> Result<(), TestCaseError> {
    let keys = broker.keys(Q);
    let mut conn = broker.conn();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let (flow, parents_of) = build(&steps);
    let n = steps.len();
    prop_assert!(
        broker
            .submit_flow(&flow, "p", KEEP.keep_ms())
            .await
            .unwrap()
    );
    let fk = keys.flow("p");
    let all: Vec<_> = QUEUES.iter().map(|q| broker.keys(q)).collect();
    let mut choice = choices.iter().cycle();
    // Bounded: every round ends or retries at least one job, and attempts are capped at 2.
    for _round in 0..(n * 8 + 20) {
        // Sometimes a queue's relay runs now; the others wait.
        if choice.next().unwrap().is_multiple_of(3) {
            let q = *choice.next().unwrap() as usize % QUEUES.len();
            broker.relay_flows(&all[q]).await.unwrap();
        }
        let mut jobs = Vec::new();
        for keys in &all {
            let batch = broker
                .claim(keys, "w", Duration::from_secs(600), 4, Duration::ZERO)
                .await
                .unwrap();
            jobs.extend(batch.jobs.into_iter().map(|j| (keys.clone(), j)));
        }
        if jobs.is_empty() {
            // Nothing to run: what the relays still hold is all that can move anything.
            let mut applied = 0;
            for keys in &all {
                applied += broker.relay_flows(keys).await.unwrap();
            }
            if applied == 0 {
                break;
            }
            continue;
        }
        for (keys, job) in jobs {
            let keys = &*keys;
            let step: usize = job.id.rsplit_once(":s").unwrap().1.parse().unwrap();
            let (parents, policy) = &parents_of[step];
            let mut some_failed = false;
            // The parents' ends as the step's own queue holds them (its own, or copies
            // relayed from the others' queues).
            let own = keys.flow("p");
            for p in parents {
                let end: Option<String> = conn.hget(&own, format!("e:{p}")).await.unwrap();
                prop_assert!(end.is_some(), "s{step} started before its parent {p} ended");
                some_failed |= matches!(end.as_deref(), Some("dead" | "cancelled"));
            }
            if *policy == ParentFailure::OnlyIfFailed {
                prop_assert!(some_failed, "s{step} ran though none of its parents failed");
            }
            match choice.next().unwrap() % 4 {
                0 | 1 => {
                    let out = broker
                        .ack(
                            keys,
                            &KEEP,
                            &[(job.id.clone(), job.fence, format!("r{step}"))],
                        )
                        .await
                        .unwrap();
                    prop_assert_eq!(out.acked, 1);
                }
                2 => {
                    let mode = FailMode::Retry(Duration::ZERO);
                    broker
                        .fail(keys, &KEEP, &job.id, job.fence, "boom", mode)
                        .await
                        .unwrap();
                }
                _ => {
                    // The lease runs out; the recoverer takes the job back (pending, or dead
                    // on its last attempt), and the old holder's late ack is refused.
                    let past = now(broker).await - 1000;
                    let _: () = redis::cmd("ZADD")
                        .arg(&keys.active)
                        .arg("XX")
                        .arg(past)
                        .arg(&job.id)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    broker.recover(keys, &KEEP, 100).await.unwrap();
                    let late = broker
                        .ack(keys, &KEEP, &[(job.id.clone(), job.fence, "late".into())])
                        .await
                        .unwrap();
                    prop_assert_eq!(late.acked, 0);
                }
            }
        }
        // Retries are due at once; claim promotes them.
    }

    let hash: std::collections::HashMap<String, String> = conn.hgetall(&fk).await.unwrap();
    prop_assert!(
        hash.contains_key("finished"),
        "the workflow did not end: {:?}",
        hash
    );
    prop_assert_eq!(hash.get("left").map(String::as_str), Some("0"));
    let ttl: i64 = conn.pttl(&fk).await.unwrap();
    prop_assert!(ttl > 0 && ttl <= KEEP.keep_ms() as i64, "ttl {}", ttl);
    for i in 0..n {
        let end = hash.get(&format!("e:s{i}")).cloned();
        prop_assert!(end.is_some(), "s{i} has no end");
        let end = end.unwrap();
        let step_keys = &all[steps[i].4 as usize];
        let record = record::get(&mut conn, step_keys, &step_job_id("p", &format!("s{i}")))
            .await
            .unwrap();
        let state = record.and_then(|r| record::text(&r, "state"));
        let expected = if end == "skipped" {
            "completed"
        } else {
            end.as_str()
        };
        prop_assert_eq!(state.as_deref(), Some(expected), "s{}", i);
    }
    for keys in &all {
        let counts = broker.counts(keys).await.unwrap();
        for s in [
            JobState::Waiting,
            JobState::Pending,
            JobState::Active,
            JobState::Retry,
        ] {
            prop_assert_eq!(counts.states[&s], 0, "{} in {}", s, keys.name);
        }
        let outbox: usize = conn.hlen(&keys.flow_outbox).await.unwrap();
        prop_assert_eq!(outbox, 0, "{}'s outbox", keys.name);
    }

    // Its retention: the workflow index holds it until exactly when its hash expires.
    let finished: i64 = hash["finished"].parse().unwrap();
    let listed: Option<f64> = conn.zscore(&keys.flows, "p").await.unwrap();
    prop_assert!(
        listed.is_some(),
        "a finished workflow is listed within its retention"
    );
    let deadline: Option<f64> = conn.zscore(&keys.flow_ends, "p").await.unwrap();
    prop_assert_eq!(deadline, Some((finished + KEEP.keep_ms() as i64) as f64));
    // The retention runs out. Redis' clock cannot be moved, so the hash's TTL and the index's
    // deadline are brought to now (what time would do), then the janitor runs with a
    // retention of zero for the step jobs.
    for keys in &all {
        let part = keys.flow("p");
        if keys.name != Q {
            // A part (if the workflow had steps there) expires on its own too.
            let ttl: i64 = conn.pttl(&part).await.unwrap();
            prop_assert!(
                ttl == -2 || (ttl > 0 && ttl <= KEEP.keep_ms() as i64),
                "{} ttl {}",
                part,
                ttl
            );
        }
        let _: () = conn.pexpire(&part, 1).await.unwrap();
    }
    let _: () = redis::cmd("ZADD")
        .arg(&keys.flow_ends)
        .arg("XX")
        .arg(now(broker).await - 1)
        .arg("p")
        .query_async(&mut conn)
        .await
        .unwrap();
    let gone = std::time::Instant::now() + Duration::from_secs(5);
    for keys in &all {
        while conn.exists::<_, bool>(keys.flow("p")).await.unwrap() {
            prop_assert!(std::time::Instant::now() < gone, "the hash did not expire");
            tokio::task::yield_now().await;
        }
    }
    let none = Retention {
        completed_for: Duration::ZERO,
        dead_for: Duration::ZERO,
        ..KEEP
    };
    for keys in &all {
        broker.janitor(keys, &none, 1000, false).await.unwrap();
    }
    // No key of the workflow is left, and no index names it.
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in &left {
        prop_assert!(!key.contains("flow:p"), "{} outlived the workflow", key);
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if kind == "zset" {
            let members: Vec<String> = conn.zrange(key, 0, -1).await.unwrap();
            prop_assert!(
                members.iter().all(|m| !m.contains("flow:p") && m != "p"),
                "{} still names the workflow: {:?}",
                key,
                members
            );
        }
    }
    Ok(())
}

async fn now(broker: &Broker) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut broker.conn())
        .await
        .unwrap();
    s * 1000 + us / 1000
}
