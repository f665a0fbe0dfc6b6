//! Workflows whose steps are in several queues, on a real local Redis Cluster with each queue
//! on its own primary: the release crosses slots through the outbox and the relay
//! (docs/workflows.md, "Steps in other queues"). Each test drives the scripts one by one, so
//! the moments between them (a crash after the ending script, a relay repeated) are explicit.

use super::{HOUR, KEEP, LEASE};
use crate::broker::*;
use crate::flow::{ParentFailure, Step, Workflow, step_job_id};
use crate::inspect::{FlowInfo, FlowState, Inspector};
use redis::AsyncCommands;
use tickq_testkit::TestCluster;

/// A cluster of 3 primaries, a broker on it, and 3 queues whose slots are on 3 different
/// primaries (checked with `CLUSTER KEYSLOT` and the testkit's slot map).
struct XEnv {
    broker: Broker,
    q: [String; 3],
    _cluster: TestCluster,
}

async fn xstart() -> XEnv {
    let cluster = TestCluster::start(TestCluster::DEFAULT_PRIMARIES);
    let mut conn = cluster.client().get_connection().unwrap();
    let mut by_node: [Option<String>; 3] = Default::default();
    for i in 0..500 {
        let queue = format!("x{i}");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(QueueKeys::new(&queue).pending)
            .query(&mut conn)
            .unwrap();
        let node = cluster.slot_owner(slot);
        if by_node[node].is_none() {
            by_node[node] = Some(queue);
        }
    }
    let q = by_node.map(|q| q.expect("a queue on every primary"));
    let broker = Broker::connect(&cluster.cluster_url(), &Default::default())
        .await
        .unwrap();
    XEnv {
        broker,
        q,
        _cluster: cluster,
    }
}

fn jid(step: &str) -> String {
    step_job_id("f", step)
}

/// A workflow's step counts by outcome, as `(outcome, n)` in name order.
fn counts(info: &FlowInfo) -> Vec<(&str, u64)> {
    info.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

impl XEnv {
    fn step(&self, q: usize, id: &str) -> Step {
        Step::new(id, NewJob::new(&self.q[q], "work"))
    }

    fn inspector(&self) -> Inspector {
        Inspector {
            broker: self.broker.clone(),
            retention: KEEP,
        }
    }

    async fn submit(&self, flow: &Workflow) -> bool {
        self.broker
            .submit_flow(flow, flow.id.as_deref().unwrap(), KEEP.keep_ms())
            .await
            .unwrap()
    }

    /// Claim every pending job of queue `q` (ids, sorted) with their fences.
    async fn claim_all(&self, q: usize) -> Vec<(String, u64)> {
        let batch = self
            .broker
            .claim(
                &self.broker.keys(&self.q[q]),
                "w",
                LEASE,
                100,
                Duration::ZERO,
            )
            .await
            .unwrap();
        let mut out: Vec<(String, u64)> = batch.jobs.into_iter().map(|j| (j.id, j.fence)).collect();
        out.sort();
        out
    }

    /// Claim step `s` of queue `q`, which must be the next pending job there; answers its
    /// fence.
    async fn claim(&self, q: usize, s: &str) -> u64 {
        let batch = self
            .broker
            .claim(&self.broker.keys(&self.q[q]), "w", LEASE, 1, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            batch.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            [jid(s)],
            "{s} should be the next pending job of {}",
            self.q[q]
        );
        batch.jobs[0].fence
    }

    /// Claim step `s` of queue `q` (see `claim`) and ack it: the ending script alone, without
    /// the relay that a worker runs after it (as if the worker died right then).
    async fn run(&self, q: usize, s: &str) {
        let fence = self.claim(q, s).await;
        let acks = [(jid(s), fence, format!("result of {s}"))];
        let keys = self.broker.keys(&self.q[q]);
        assert_eq!(self.broker.ack(&keys, &KEEP, &acks).await.unwrap().acked, 1);
    }

    /// Claim step `s` of queue `q` (see `claim`) and fail it for good, as a handler's kill
    /// does; like `run`, without the relay.
    async fn kill(&self, q: usize, s: &str) {
        let fence = self.claim(q, s).await;
        let keys = self.broker.keys(&self.q[q]);
        let out = self
            .broker
            .fail(&keys, &KEEP, &jid(s), fence, "boom", FailMode::Kill)
            .await
            .unwrap();
        assert_eq!(out, FailOutcome::Dead);
    }

    /// Submit `flow` (home q0, a step "a" there) while a plain job holds a's id in q0: the
    /// parts in the other queues are created, the home is refused.
    async fn submit_with_home_blocked(&self, flow: &Workflow) {
        let blocker = NewJob::new(&self.q[0], "work").id(jid("a"));
        assert!(self.broker.enqueue(vec![blocker]).await.unwrap()[0].created);
        let err = self
            .broker
            .submit_flow(flow, "f", KEEP.keep_ms())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::AlreadyExists, "{err}");
    }

    /// The blocking job of `submit_with_home_blocked` goes, and the same submit again keeps
    /// the parts and creates the home.
    async fn unblock_and_submit(&self, flow: &Workflow) {
        let home = self.broker.keys(&self.q[0]);
        self.broker.delete(&home, &jid("a")).await.unwrap();
        assert!(self.submit(flow).await);
    }

    async fn relay(&self, q: usize) -> u64 {
        self.broker
            .relay_flows(&self.broker.keys(&self.q[q]))
            .await
            .unwrap()
    }

    async fn state(&self, q: usize, s: &str) -> Option<String> {
        self.job_field(q, s, "state").await
    }

    async fn job_field(&self, q: usize, s: &str, field: &str) -> Option<String> {
        let keys = self.broker.keys(&self.q[q]);
        record::get(&mut self.broker.conn(), &keys, &jid(s))
            .await
            .unwrap()
            .and_then(|f| record::text(&f, field))
    }

    async fn outbox_len(&self, q: usize) -> usize {
        self.broker
            .conn()
            .hlen(&self.broker.keys(&self.q[q]).flow_outbox)
            .await
            .unwrap()
    }

    async fn waiting(&self) -> usize {
        let mut n = 0;
        for q in &self.q {
            let c: usize = self
                .broker
                .conn()
                .zcard(&self.broker.keys(q).waiting)
                .await
                .unwrap();
            n += c;
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_across_queues_runs_the_child_once_after_all_its_parents() {
    let env = xstart().await;
    // Home q0; parents in all three queues; the child in q2.
    let mut flow = Workflow::new(&env.q[0], "fan-in").id("f");
    let mut parents = Vec::new();
    for p in 0..6 {
        flow = flow.step(env.step(p % 3, &format!("p{p}")));
        parents.push(format!("p{p}"));
    }
    flow = flow.step(env.step(2, "child").after(parents.clone()));
    assert!(env.submit(&flow).await);
    // Submit relayed `ready`: every parent is pending in its own queue, the child waits.
    for p in 0..6 {
        assert_eq!(
            env.state(p % 3, &format!("p{p}")).await.as_deref(),
            Some("pending")
        );
    }
    assert_eq!(env.state(2, "child").await.as_deref(), Some("waiting"));

    // Every parent ends, with no relay yet: the child's own-queue parents counted at once,
    // the others sit in their queues' outboxes.
    for p in 0..6 {
        env.run(p % 3, &format!("p{p}")).await;
    }
    assert_eq!(
        env.job_field(2, "child", "wait").await.as_deref(),
        Some("4")
    );
    assert_eq!(env.state(2, "child").await.as_deref(), Some("waiting"));
    assert!(env.outbox_len(0).await > 0 && env.outbox_len(1).await > 0);

    // The relays: the child is released exactly once, its parents' results beside it.
    env.relay(0).await;
    assert_eq!(env.state(2, "child").await.as_deref(), Some("waiting"));
    env.relay(1).await;
    assert_eq!(env.state(2, "child").await.as_deref(), Some("pending"));
    assert_eq!(
        env.job_field(2, "child", "wait").await.as_deref(),
        Some("0")
    );
    let results = env
        .broker
        .step_results(
            &env.broker.keys(&env.q[2]),
            "f",
            &parents.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    for (p, r) in parents.iter().zip(&results) {
        assert_eq!(r.as_deref(), Some(format!("result of {p}").as_str()));
    }
    // Nothing is left to relay, and relaying again changes nothing.
    for q in 0..3 {
        env.relay(q).await;
        assert_eq!(env.outbox_len(q).await, 0);
        assert_eq!(env.relay(q).await, 0);
    }
    assert_eq!(env.claim_all(2).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_across_three_queues_runs_in_order_and_shows_as_one_workflow() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "chain")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b").after(["a"]))
        .step(env.step(2, "c").after(["b"]));
    assert!(env.submit(&flow).await);
    // A repeated submit creates nothing, in any queue.
    assert!(!env.submit(&flow).await);

    env.run(0, "a").await;
    assert_eq!(env.state(1, "b").await.as_deref(), Some("waiting"));
    env.relay(0).await;
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));
    assert_eq!(env.state(2, "c").await.as_deref(), Some("waiting"));

    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Running);
    assert_eq!(info.queue, env.q[0]);
    let queues: Vec<&str> = info.steps.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(
        queues,
        [&env.q[0], &env.q[1], &env.q[2]].map(String::as_str)
    );
    let states: Vec<&str> = info.steps.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["completed", "pending", "waiting"]);

    env.run(1, "b").await;
    env.relay(1).await;
    env.run(2, "c").await;
    env.relay(2).await;
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert_eq!(info.counts["completed"], 3);
    assert_eq!(
        info.steps[2].result.as_deref(),
        Some("result of c"),
        "the home holds every step's result"
    );
    // Listed once, under its home; every queue's hash of it now has a retention.
    let list = env.inspector().flows(None, 10).await.unwrap();
    assert_eq!(list.flows.len(), 1);
    assert_eq!(list.flows[0].state, FlowState::Succeeded);
    assert_eq!(list.flows[0].ended["completed"], 3);
    for q in &env.q {
        let ttl: i64 = env
            .broker
            .conn()
            .pttl(env.broker.keys(q).flow("f"))
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= KEEP.keep_ms() as i64, "{q}: {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_ending_script_and_the_relay_loses_nothing_and_runs_nothing_twice() {
    let env = xstart().await;
    // Home q2: an end in q0 is told to c's queue and to the home.
    let flow = Workflow::new(&env.q[2], "crash")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b"))
        .step(env.step(1, "c").after(["a", "b"]));
    assert!(env.submit(&flow).await);

    // a ends; the worker dies before its relay: the end waits in q0's outbox.
    env.run(0, "a").await;
    assert_eq!(
        env.outbox_len(0).await,
        2,
        "one entry for c's queue, one for the home"
    );
    assert_eq!(env.job_field(1, "c", "wait").await.as_deref(), Some("2"));

    // A relay applies the entries and dies before it removes them; another relay (or the
    // same entries applied twice) settles nothing again.
    let keys1 = env.broker.keys(&env.q[1]);
    let entries: Vec<(String, String)> = env
        .broker
        .conn()
        .hgetall(&env.broker.keys(&env.q[0]).flow_outbox)
        .await
        .unwrap();
    let to_q1: Vec<&(String, String)> = entries
        .iter()
        .filter(|(f, _)| f.ends_with(&env.q[1]))
        .collect();
    assert_eq!(to_q1.len(), 1);
    for expected in [1, 0] {
        let mut inv = SCRIPTS.flow_settle.prepare_invoke();
        inv.key(&keys1.pending).arg(&keys1.job_prefix);
        for (field, value) in &to_q1 {
            inv.arg(field).arg(value);
        }
        let applied: u64 = inv.invoke_async(&mut env.broker.conn()).await.unwrap();
        assert_eq!(applied, expected);
        assert_eq!(env.job_field(1, "c", "wait").await.as_deref(), Some("1"));
    }
    // The periodic relay finishes the job: the home counts a once, the outbox empties.
    env.relay(0).await;
    assert_eq!(env.outbox_len(0).await, 0);
    assert_eq!(env.job_field(1, "c", "wait").await.as_deref(), Some("1"));
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.counts.get("completed"), Some(&1));

    // b ends in c's own queue: c is released there and then, once.
    env.run(1, "b").await;
    assert_eq!(env.state(1, "c").await.as_deref(), Some("pending"));
    env.run(1, "c").await;
    env.relay(1).await;
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert_eq!(info.counts["completed"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policies_settle_children_in_other_queues() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "policies")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "x").after(["a"]))
        .step(
            env.step(1, "y")
                .after(["a"])
                .on_parent_failure(ParentFailure::Run),
        )
        .step(
            env.step(1, "z")
                .after(["a"])
                .on_parent_failure(ParentFailure::Skip),
        )
        .step(env.step(2, "z2").after(["z"]))
        .step(env.step(2, "x2").after(["x"]));
    assert!(env.submit(&flow).await);

    env.kill(0, "a").await;
    // One relay of a's queue follows the settling on through the third queue.
    env.relay(0).await;
    assert_eq!(env.state(1, "x").await.as_deref(), Some("cancelled"));
    assert_eq!(
        env.job_field(1, "x", "error").await.as_deref(),
        Some("parent step a dead")
    );
    assert_eq!(env.state(1, "y").await.as_deref(), Some("pending"));
    assert_eq!(
        env.job_field(1, "y", "parent_failed").await.as_deref(),
        Some("a")
    );
    assert_eq!(env.state(1, "z").await.as_deref(), Some("completed"));
    assert_eq!(env.job_field(1, "z", "skipped").await.as_deref(), Some("a"));
    assert_eq!(env.state(2, "z2").await.as_deref(), Some("pending"));
    assert_eq!(env.state(2, "x2").await.as_deref(), Some("cancelled"));
    assert_eq!(
        env.job_field(2, "x2", "error").await.as_deref(),
        Some("parent step x cancelled")
    );
    assert_eq!(env.waiting().await, 0, "nothing is left waiting");

    env.run(1, "y").await;
    env.run(2, "z2").await;
    for q in 0..3 {
        env.relay(q).await;
    }
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Failed);
    assert_eq!(
        counts(&info),
        [
            ("cancelled", 2),
            ("completed", 2),
            ("dead", 1),
            ("skipped", 1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry_reach_every_queue() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "cancel")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b").after(["a"]))
        .step(env.step(2, "c").after(["b"]));
    assert!(env.submit(&flow).await);
    env.run(0, "a").await;
    env.relay(0).await;

    let cancelled = env.inspector().cancel_flow("f").await.unwrap();
    // b, pending; c, waiting (cancelled in its queue before b's end reached it).
    assert_eq!(cancelled.cancelled, 2);
    assert_eq!(env.state(1, "b").await.as_deref(), Some("cancelled"));
    assert_eq!(env.state(2, "c").await.as_deref(), Some("cancelled"));
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Cancelled);
    // Cancelling again changes nothing.
    let again = env.inspector().cancel_flow("f").await.unwrap();
    assert_eq!((again.cancelled, again.cancelling), (0, 0));

    let retried = env.inspector().retry_flow("f").await.unwrap();
    assert_eq!(retried.retried, 2);
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));
    assert_eq!(env.state(2, "c").await.as_deref(), Some("waiting"));
    assert_eq!(
        env.inspector().flow("f").await.unwrap().state,
        FlowState::Running
    );
    // Retrying again finds nothing failed.
    assert_eq!(env.inspector().retry_flow("f").await.unwrap().retried, 0);

    env.run(1, "b").await;
    env.relay(1).await;
    assert_eq!(env.state(2, "c").await.as_deref(), Some("pending"));
    env.run(2, "c").await;
    env.relay(2).await;
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert_eq!(info.counts["completed"], 3);
    assert!(!info.cancel_requested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_parent_retried_resumes_its_children_in_other_queues() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "retry")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b").after(["a"]))
        .step(
            env.step(2, "c")
                .after(["a"])
                .on_parent_failure(ParentFailure::Skip),
        );
    assert!(env.submit(&flow).await);
    env.kill(0, "a").await;
    env.relay(0).await;
    assert_eq!(env.state(1, "b").await.as_deref(), Some("cancelled"));
    assert_eq!(env.state(2, "c").await.as_deref(), Some("completed"));
    assert_eq!(
        env.inspector().flow("f").await.unwrap().state,
        FlowState::Failed
    );

    // a and b start over (c was skipped: a success, kept); b waits for a again.
    assert_eq!(env.inspector().retry_flow("f").await.unwrap().retried, 2);
    assert_eq!(env.state(0, "a").await.as_deref(), Some("pending"));
    assert_eq!(env.state(1, "b").await.as_deref(), Some("waiting"));
    env.run(0, "a").await;
    env.relay(0).await;
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));
    env.run(1, "b").await;
    env.relay(1).await;
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert_eq!(counts(&info), [("completed", 2), ("skipped", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_that_stops_before_its_home_runs_nothing_and_a_repeat_completes_it() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "half")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b"))
        .step(env.step(2, "c").after(["a", "b"]));
    // A job holds a's id in the home queue: the parts are created, the home is refused.
    env.submit_with_home_blocked(&flow).await;
    // Nothing of it runs: b waits in its part, with no workflow to show.
    assert_eq!(env.state(1, "b").await.as_deref(), Some("waiting"));
    assert!(env.claim_all(1).await.is_empty());
    for q in 0..3 {
        env.relay(q).await;
    }
    assert!(env.claim_all(1).await.is_empty());
    let missing = env.inspector().flow("f").await.unwrap_err();
    assert_eq!(missing.kind(), crate::ErrorKind::NotFound);

    // The blocker goes; the same submit again keeps the parts and creates the home.
    env.unblock_and_submit(&flow).await;
    assert_eq!(env.state(0, "a").await.as_deref(), Some("pending"));
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));
    env.run(0, "a").await;
    env.run(1, "b").await;
    env.relay(0).await;
    env.relay(1).await;
    assert_eq!(env.claim_all(2).await.len(), 1);
}

/// What the janitor's orphan check sees of queue `q`: the parts it lists, and each one's steps.
impl XEnv {
    async fn listed_parts(&self, q: usize) -> usize {
        self.broker
            .conn()
            .zcard(&self.broker.keys(&self.q[q]).flow_parts)
            .await
            .unwrap()
    }

    async fn drop_orphans(&self, q: usize, age: Duration) -> u64 {
        self.broker
            .drop_orphan_parts(&self.broker.keys(&self.q[q]), age, 100)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_whose_home_never_came_is_dropped_with_its_steps_once_old_enough() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "half")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b"))
        .step(env.step(2, "c").after(["a", "b"]));
    env.submit_with_home_blocked(&flow).await;
    assert_eq!(
        (env.listed_parts(1).await, env.listed_parts(2).await),
        (1, 1)
    );
    // c is cancelled by hand meanwhile: it goes with its part all the same.
    let q2 = env.broker.keys(&env.q[2]);
    env.broker.cancel(&q2, &KEEP, &jid("c")).await.unwrap();

    // Younger than the age: kept.
    assert_eq!(env.drop_orphans(1, HOUR).await, 0);
    assert_eq!(env.state(1, "b").await.as_deref(), Some("waiting"));
    // Old enough, and no home: each part goes with its step job.
    assert_eq!(env.drop_orphans(1, Duration::ZERO).await, 1);
    assert_eq!(env.drop_orphans(2, Duration::ZERO).await, 1);
    assert_eq!(env.state(1, "b").await, None);
    assert_eq!(env.state(2, "c").await, None);
    for q in 1..3 {
        let keys = env.broker.keys(&env.q[q]);
        assert!(!env.broker.flow_exists(&keys, "f").await.unwrap());
        assert_eq!(env.listed_parts(q).await, 0);
    }
    assert_eq!(env.waiting().await, 0);
    let cancelled: usize = env.broker.conn().zcard(&q2.cancelled).await.unwrap();
    assert_eq!(cancelled, 0);
    // Twice: nothing left to drop.
    assert_eq!(env.drop_orphans(1, Duration::ZERO).await, 0);

    // The same submit again, unblocked, creates it all anew and runs it.
    env.unblock_and_submit(&flow).await;
    env.relay(0).await;
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));
    assert_eq!(env.listed_parts(1).await, 0, "ready: no longer listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_whose_home_exists_is_not_an_orphan_while_its_ready_is_on_the_way() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "whole")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b"));
    assert!(env.submit(&flow).await);
    // The submit handed the home's `ready` on: the part is no longer listed.
    assert_eq!(env.listed_parts(1).await, 0);
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));

    // As if that `ready` were still in the home's outbox (no relay yet): listed, not ready.
    let part = env.broker.keys(&env.q[1]);
    let mut conn = env.broker.conn();
    let () = conn.hdel(part.flow("f"), "ready").await.unwrap();
    let () = conn.zadd(&part.flow_parts, "f", 1).await.unwrap();
    // The home exists: kept, and looked at again next time.
    assert_eq!(env.drop_orphans(1, Duration::ZERO).await, 0);
    assert!(env.broker.flow_exists(&part, "f").await.unwrap());
    assert_eq!(env.state(1, "b").await.as_deref(), Some("pending"));
    assert_eq!(env.listed_parts(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_cancelled_by_hand_before_the_home_exists_is_still_counted_once_it_does() {
    let env = xstart().await;
    let flow = Workflow::new(&env.q[0], "early")
        .id("f")
        .step(env.step(0, "a"))
        .step(env.step(1, "b"))
        .step(
            env.step(2, "c")
                .after(["a", "b"])
                .on_parent_failure(ParentFailure::Run),
        );
    env.submit_with_home_blocked(&flow).await;
    // b, waiting in its part, is cancelled by hand; its end finds no home.
    let keys1 = env.broker.keys(&env.q[1]);
    env.broker.cancel(&keys1, &KEEP, &jid("b")).await.unwrap();
    env.relay(1).await;
    assert_eq!(env.outbox_len(1).await, 0);

    env.unblock_and_submit(&flow).await;
    env.run(0, "a").await;
    env.relay(0).await;
    assert_eq!(env.state(2, "c").await.as_deref(), Some("pending"));
    env.run(2, "c").await;
    env.relay(2).await;
    let info = env.inspector().flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Failed, "{info:?}");
    assert_eq!(counts(&info), [("cancelled", 1), ("completed", 2)]);
}

/// `flow retry` calls each queue in turn; between two calls a restarted parent may end again.
/// The queue retried after it then sees that newer end: a new success releases the child
/// there, a new failure leaves the child as it ended (never waiting for a parent that will not
/// end again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_meets_a_parents_newer_end_settles_by_it() {
    for parent_succeeds in [true, false] {
        let env = xstart().await;
        let flow = Workflow::new(&env.q[0], "race")
            .id("f")
            .step(env.step(0, "h"))
            .step(env.step(1, "p"))
            .step(env.step(2, "c").after(["p"]));
        assert!(env.submit(&flow).await);
        env.run(0, "h").await;
        env.kill(1, "p").await;
        env.relay(1).await;
        assert_eq!(env.state(2, "c").await.as_deref(), Some("cancelled"));
        assert_eq!(
            env.inspector().flow("f").await.unwrap().state,
            FlowState::Failed
        );

        // The plan `flow retry` makes (parents first; the failed steps with the versions of
        // their ends as the home holds them: both 1, round 0), applied by hand queue by queue.
        let plan = |q: usize| -> Vec<(String, Vec<String>, bool, Option<u64>)> {
            [
                ("h", vec![], 0, None),
                ("p", vec![], 1, Some(1)),
                ("c", vec!["p"], 2, Some(1)),
            ]
            .into_iter()
            .map(|(s, parents, at, v)| {
                let parents = parents.into_iter().map(str::to_owned).collect();
                (s.to_owned(), parents, at == q, v)
            })
            .collect()
        };
        let retry_in = async |q: usize| {
            env.broker
                .retry_flow(&env.broker.keys(&env.q[q]), "f", &plan(q))
                .await
                .unwrap()
        };
        assert_eq!(retry_in(1).await, 1, "p starts over");
        env.relay(1).await;
        // p ends again before c's queue is retried.
        if parent_succeeds {
            env.run(1, "p").await;
        } else {
            env.kill(1, "p").await;
        }
        env.relay(1).await;
        let restarted = retry_in(2).await;
        assert_eq!(retry_in(0).await, 0);
        for q in 0..3 {
            env.relay(q).await;
        }
        if parent_succeeds {
            assert_eq!(restarted, 1);
            assert_eq!(env.state(2, "c").await.as_deref(), Some("pending"));
            env.run(2, "c").await;
            env.relay(2).await;
            let info = env.inspector().flow("f").await.unwrap();
            assert_eq!(info.state, FlowState::Succeeded, "{info:?}");
        } else {
            assert_eq!(restarted, 0, "c is left cancelled: its parent died again");
            assert_eq!(env.state(2, "c").await.as_deref(), Some("cancelled"));
            assert_eq!(env.waiting().await, 0);
            let info = env.inspector().flow("f").await.unwrap();
            assert_eq!(info.state, FlowState::Failed, "{info:?}");
            assert_eq!(
                counts(&info),
                [("cancelled", 1), ("completed", 1), ("dead", 1)]
            );
        }
    }
}
