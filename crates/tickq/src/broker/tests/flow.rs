//! Table tests of the workflow scripts and of `flow_ended` in the scripts that end jobs:
//! submit all or nothing, release exactly once under the fence, failure policies, cancel and
//! retry of a whole workflow, retention.

use super::{KEEP, Q, start};
use crate::broker::*;
use crate::flow::{Batch, ParentFailure, Step, Workflow, step_job_id};
use crate::inspect::{FlowState, Inspector};

fn step(id: &str) -> Step {
    Step::new(id, NewJob::new(Q, "work"))
}

fn jid(step: &str) -> String {
    step_job_id("f", step)
}

/// a -> b -> c, and a -> d (d runs anyway), a -> e (e is skipped) -> g; h has no parent.
fn shapes() -> Workflow {
    Workflow::new(Q, "shapes")
        .id("f")
        .step(step("c").after(["b"]))
        .step(step("b").after(["a"]))
        .step(step("a"))
        .step(
            step("d")
                .after(["a", "h"])
                .on_parent_failure(ParentFailure::Run),
        )
        .step(
            step("e")
                .after(["a"])
                .on_parent_failure(ParentFailure::Skip),
        )
        .step(step("g").after(["e"]))
        .step(step("h"))
}

fn inspector(env: &tests::Env) -> Inspector {
    Inspector {
        broker: env.broker.clone(),
        retention: KEEP,
    }
}

async fn submit(env: &tests::Env, flow: &Workflow) -> bool {
    env.broker
        .submit_flow(flow, flow.id.as_deref().unwrap(), KEEP.keep_ms())
        .await
        .unwrap()
}

/// Claim the pending step `s` (the next pending job) and ack it.
async fn run(env: &tests::Env, s: &str) {
    let fence = env.claim_next(&jid(s)).await;
    let out = env
        .broker
        .ack(
            &env.keys,
            &KEEP,
            &[(jid(s), fence, format!("result of {s}"))],
        )
        .await
        .unwrap();
    assert_eq!(out.acked, 1, "{s}");
}

#[tokio::test]
async fn submit_creates_roots_pending_and_the_rest_waiting_once() {
    let env = start().await;
    assert!(submit(&env, &shapes()).await);

    let mut pending = env.members(JobState::Pending).await;
    pending.sort();
    assert_eq!(pending, [jid("a"), jid("h")]);
    let mut waiting = env.members(JobState::Waiting).await;
    waiting.sort();
    assert_eq!(waiting, ["b", "c", "d", "e", "g"].map(jid));
    for s in ["b", "c", "d", "e", "g"] {
        env.assert_state(&jid(s), JobState::Waiting).await;
    }
    assert_eq!(env.num(&jid("d"), "wait").await, 2);
    assert_eq!(env.field(&jid("d"), "policy").await.as_deref(), Some("run"));
    // The envelope carries the flow, the step and its parents for the handler.
    let data = env.field(&jid("d"), "data").await.unwrap();
    let envelope = message::Envelope::decode(data.as_bytes(), &jid("d"), Q).unwrap();
    assert_eq!(envelope.meta["flow"], "f");
    assert_eq!(envelope.meta["step"], "d");
    assert_eq!(envelope.meta["after"], "a h");

    // Again: nothing changes.
    let before = env.snapshot().await;
    assert!(!submit(&env, &shapes()).await);
    assert_eq!(env.snapshot().await, before);

    // A claim never takes a waiting step.
    let batch = env.claim("w1", 100).await;
    let mut claimed: Vec<String> = batch.jobs.into_iter().map(|j| j.id).collect();
    claimed.sort();
    assert_eq!(claimed, [jid("a"), jid("h")]);
}

#[tokio::test]
async fn submit_over_an_existing_step_job_creates_nothing() {
    let env = start().await;
    env.enqueue(NewJob::new(Q, "work").id(jid("b"))).await;
    let before = env.snapshot().await;

    let err = env
        .broker
        .submit_flow(&shapes(), "f", KEEP.keep_ms())
        .await
        .unwrap_err();

    assert_eq!(err.kind(), crate::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("nothing was"), "{err}");
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn a_chain_releases_each_child_once_with_the_parents_results() {
    let env = start().await;
    let flow = Workflow::new(Q, "chain")
        .id("f")
        .step(step("a"))
        .step(step("b").after(["a"]))
        .step(step("c").after(["b"]));
    submit(&env, &flow).await;

    run(&env, "a").await;
    env.assert_state(&jid("b"), JobState::Pending).await;
    env.assert_state(&jid("c"), JobState::Waiting).await;
    run(&env, "b").await;
    run(&env, "c").await;

    let fk = env.keys.flow("f");
    let result: Option<String> = env.conn.clone().hget(&fk, "r:b").await.unwrap();
    assert_eq!(result.as_deref(), Some("result of b"));
    let info = inspector(&env).flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert_eq!(info.counts["completed"], 3);
    assert!(info.finished_at.is_some());
    // The finished workflow's hash now lives for the retention.
    let ttl: i64 = env.conn.clone().pttl(&fk).await.unwrap();
    assert!(ttl > 0 && ttl <= KEEP.keep_ms() as i64, "{ttl}");
}

#[tokio::test]
async fn a_zombies_late_ack_releases_nothing_twice() {
    let env = start().await;
    let flow = Workflow::new(Q, "zombie")
        .id("f")
        .step(step("a"))
        .step(step("x"))
        .step(step("c").after(["a", "x"]));
    submit(&env, &flow).await;

    // a's first holder stalls; its lease runs out and a second holder takes a over.
    let zombie = env.claim_next(&jid("a")).await;
    env.expire_lease(&jid("a")).await;
    let rec = env.broker.recover(&env.keys, &KEEP, 100).await.unwrap();
    assert_eq!(rec.to_pending, 1);
    // x is ahead of a in pending now; run it first.
    run(&env, "x").await;
    let current = env.claim_next(&jid("a")).await;
    assert!(current > zombie);

    // The zombie acks late: refused, c keeps waiting for a.
    let before = env.snapshot().await;
    let out = env
        .broker
        .ack(&env.keys, &KEEP, &[(jid("a"), zombie, "late".into())])
        .await
        .unwrap();
    assert_eq!(out.stale, [jid("a")]);
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.num(&jid("c"), "wait").await, 1);

    let acked = [(jid("a"), current, "r".to_owned())];
    env.broker.ack(&env.keys, &KEEP, &acked).await.unwrap();
    env.assert_state(&jid("c"), JobState::Pending).await;
    assert_eq!(env.num(&jid("c"), "wait").await, 0);
    // A repeated ack (the acker's retry after a lost reply) changes nothing.
    let before = env.snapshot().await;
    env.broker.ack(&env.keys, &KEEP, &acked).await.unwrap();
    assert_eq!(env.snapshot().await, before);
    assert_eq!(env.members(JobState::Pending).await, [jid("c")]);
}

#[tokio::test]
async fn a_dead_parent_cancels_skips_and_runs_its_children_at_once() {
    let env = start().await;
    submit(&env, &shapes()).await;

    let fence = env.claim_next(&jid("a")).await;
    let out = env
        .broker
        .fail(&env.keys, &KEEP, &jid("a"), fence, "boom", FailMode::Kill)
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Dead);

    // cancel: b, and c after it, at once, with the reason.
    env.assert_state(&jid("b"), JobState::Cancelled).await;
    assert_eq!(
        env.field(&jid("b"), "error").await.as_deref(),
        Some("parent step a dead")
    );
    env.assert_state(&jid("c"), JobState::Cancelled).await;
    assert_eq!(
        env.field(&jid("c"), "error").await.as_deref(),
        Some("parent step b cancelled")
    );
    // skip: e ends as skipped, a success for g, which is released.
    env.assert_state(&jid("e"), JobState::Completed).await;
    assert_eq!(env.field(&jid("e"), "skipped").await.as_deref(), Some("a"));
    env.assert_state(&jid("g"), JobState::Pending).await;
    // run: d still waits for h, then runs.
    env.assert_state(&jid("d"), JobState::Waiting).await;
    run(&env, "h").await;
    env.assert_state(&jid("d"), JobState::Pending).await;
    assert_eq!(
        env.field(&jid("d"), "parent_failed").await.as_deref(),
        Some("a")
    );
    assert!(env.members(JobState::Waiting).await.is_empty());

    // g was released ahead of d; both run, and the workflow ends failed.
    run(&env, "g").await;
    run(&env, "d").await;
    let info = inspector(&env).flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Failed);
    let states: BTreeMap<&str, &str> = info
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            ("a", "dead"),
            ("b", "cancelled"),
            ("c", "cancelled"),
            ("d", "completed"),
            ("e", "skipped"),
            ("g", "completed"),
            ("h", "completed"),
        ])
    );
    assert_eq!(info.counts["cancelled"], 2);
}

#[tokio::test]
async fn a_retried_workflow_resumes_its_cancelled_steps() {
    let env = start().await;
    let flow = Workflow::new(Q, "retry")
        .id("f")
        .step(step("a"))
        .step(step("ok"))
        .step(step("b").after(["a", "ok"]))
        .step(step("c").after(["b"]));
    submit(&env, &flow).await;
    let fence = env.claim_next(&jid("a")).await;
    env.broker
        .fail(&env.keys, &KEEP, &jid("a"), fence, "boom", FailMode::Kill)
        .await
        .unwrap();
    run(&env, "ok").await;
    let insp = inspector(&env);
    assert_eq!(insp.flow("f").await.unwrap().state, FlowState::Failed);

    let retried = insp.retry_flow("f").await.unwrap();

    assert_eq!(retried.retried, 3);
    env.assert_state(&jid("a"), JobState::Pending).await;
    env.assert_state(&jid("b"), JobState::Waiting).await;
    assert_eq!(env.num(&jid("b"), "wait").await, 1, "ok succeeded already");
    assert_eq!(env.num(&jid("c"), "wait").await, 1);
    assert_eq!(env.num(&jid("a"), "attempt").await, 0);
    assert_eq!(insp.flow("f").await.unwrap().state, FlowState::Running);
    run(&env, "a").await;
    run(&env, "b").await;
    run(&env, "c").await;
    assert_eq!(insp.flow("f").await.unwrap().state, FlowState::Succeeded);
    // Nothing failed any more: a second retry does nothing.
    assert_eq!(insp.retry_flow("f").await.unwrap().retried, 0);
}

#[tokio::test]
async fn cancelling_a_workflow_stops_everything_and_releases_nothing() {
    let env = start().await;
    let flow = Workflow::new(Q, "cancel")
        .id("f")
        .step(step("a"))
        .step(step("p"))
        .step(step("b").after(["a"]).on_parent_failure(ParentFailure::Run))
        .step(step("c").after(["p"]));
    submit(&env, &flow).await;
    let fence = env.claim_next(&jid("a")).await;
    let running = env.claim_next(&jid("p")).await;
    let insp = inspector(&env);

    // The mark comes first: a step ending after it releases nothing.
    assert!(
        env.broker
            .mark_flow_cancelled(&env.keys, "f")
            .await
            .unwrap()
    );
    env.broker
        .ack(&env.keys, &KEEP, &[(jid("a"), fence, String::new())])
        .await
        .unwrap();
    env.assert_state(&jid("b"), JobState::Cancelled).await;
    assert_eq!(
        env.field(&jid("b"), "error").await.as_deref(),
        Some("workflow cancelled")
    );
    // Then every step not ended is cancelled.
    let out = insp.cancel_flow("f").await.unwrap();
    assert_eq!((out.cancelled, out.cancelling), (1, 1));
    env.assert_state(&jid("c"), JobState::Cancelled).await;
    assert_eq!(insp.flow("f").await.unwrap().state, FlowState::Running);
    // p's worker sees the request and stops it.
    let out = env
        .broker
        .fail(
            &env.keys,
            &KEEP,
            &jid("p"),
            running,
            "cancelled",
            FailMode::Cancel,
        )
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Cancelled);
    let info = insp.flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Cancelled);
    assert!(env.members(JobState::Pending).await.is_empty());
    assert!(env.members(JobState::Waiting).await.is_empty());
}

#[tokio::test]
async fn cancelling_deleting_or_killing_a_step_by_hand_settles_its_children() {
    let env = start().await;
    let flow = Workflow::new(Q, "by-hand")
        .id("f")
        .step(step("a"))
        .step(step("b").after(["a"]))
        .step(step("c").after(["b"]).on_parent_failure(ParentFailure::Run))
        .step(
            step("d")
                .after(["c"])
                .on_parent_failure(ParentFailure::Skip),
        )
        .step(step("e").after(["d"]));
    submit(&env, &flow).await;

    // Retry and reschedule refuse a waiting step: they would run it before its parents.
    let err = env.broker.retry(&env.keys, &jid("b")).await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Conflict, "{err}");
    // Killing a waiting step is allowed and cancels what follows by policy.
    assert_eq!(
        env.broker.kill(&env.keys, &KEEP, &jid("b")).await.unwrap(),
        JobState::Waiting
    );
    env.assert_state(&jid("b"), JobState::Dead).await;
    // c runs anyway, but still waits... for nothing else: b was its only parent.
    env.assert_state(&jid("c"), JobState::Pending).await;
    // Deleting the pending c counts as cancelled: d is skipped, e released.
    env.broker.delete(&env.keys, &jid("c")).await.unwrap();
    env.assert_state(&jid("d"), JobState::Completed).await;
    env.assert_state(&jid("e"), JobState::Pending).await;
    // Cancelling a by hand (it is pending) ends the last root.
    env.broker
        .cancel(&env.keys, &KEEP, &jid("a"))
        .await
        .unwrap();
    env.broker
        .cancel(&env.keys, &KEEP, &jid("e"))
        .await
        .unwrap();
    let info = inspector(&env).flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Failed);
    assert_eq!(info.counts.values().sum::<u64>(), 5);
    assert!(env.members(JobState::Waiting).await.is_empty());
}

#[tokio::test]
async fn a_missing_workflow_is_not_found() {
    let env = start().await;
    env.enqueue(NewJob::new(Q, "work")).await;
    let insp = inspector(&env);
    for err in [
        insp.flow("nope").await.unwrap_err(),
        insp.cancel_flow("nope").await.map(|_| ()).unwrap_err(),
        insp.retry_flow("nope").await.map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(err.kind(), crate::ErrorKind::NotFound, "{err}");
    }
    let err = insp.flow("a b").await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{err}");
}

/// p1, p2 with all three callbacks, and a step after on_failure (its own children follow
/// it like any step's).
fn batch() -> Workflow {
    Workflow::new(Q, "batch")
        .id("f")
        .step(step("p1"))
        .step(step("p2"))
        .step(step("done"))
        .step(step("ok"))
        .step(step("alert"))
        .step(step("page").after(["alert"]))
        .batch(
            Batch::new(["p1", "p2"])
                .on_complete("done")
                .on_success("ok")
                .on_failure("alert"),
        )
}

fn callback_states(info: &crate::inspect::FlowInfo) -> BTreeMap<&str, &str> {
    info.steps
        .iter()
        .filter(|s| !s.id.starts_with('p') || s.id == "page")
        .map(|s| (s.id.as_str(), s.state.as_str()))
        .collect()
}

#[tokio::test]
async fn batch_callbacks_when_every_step_succeeds() {
    let env = start().await;
    submit(&env, &batch()).await;
    assert_eq!(
        env.field(&jid("alert"), "policy").await.as_deref(),
        Some("only_if_failed")
    );
    assert_eq!(
        env.field(&jid("done"), "policy").await.as_deref(),
        Some("run")
    );

    // Never early: one step of the batch ended, every callback still waits.
    run(&env, "p1").await;
    for s in ["done", "ok", "alert", "page"] {
        env.assert_state(&jid(s), JobState::Waiting).await;
    }
    run(&env, "p2").await;

    // on_complete and on_success are released, once each; on_failure ends as skipped with
    // the reason, and its child runs (skipped counts as a success).
    let mut pending = env.members(JobState::Pending).await;
    pending.sort();
    assert_eq!(pending, ["done", "ok", "page"].map(jid));
    env.assert_state(&jid("alert"), JobState::Completed).await;
    assert_eq!(
        env.field(&jid("alert"), "skipped").await.as_deref(),
        Some("no parent failed")
    );
    // A repeated ack of p2 settles nothing again.
    let before = env.snapshot().await;
    let p2 = [(
        jid("p2"),
        env.num(&jid("p2"), "fence").await as u64,
        String::new(),
    )];
    env.broker.ack(&env.keys, &KEEP, &p2).await.unwrap();
    assert_eq!(env.snapshot().await, before);

    for s in ["done", "ok", "page"] {
        run(&env, s).await;
    }
    let info = inspector(&env).flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert_eq!(
        callback_states(&info),
        BTreeMap::from([
            ("alert", "skipped"),
            ("done", "completed"),
            ("ok", "completed"),
            ("page", "completed"),
        ])
    );
}

#[tokio::test]
async fn batch_callbacks_when_a_step_dies() {
    let env = start().await;
    submit(&env, &batch()).await;
    let fence = env.claim_next(&jid("p1")).await;
    env.broker
        .fail(&env.keys, &KEEP, &jid("p1"), fence, "boom", FailMode::Kill)
        .await
        .unwrap();

    // on_success can no longer run: cancelled at once, with the reason. on_failure and
    // on_complete wait for p2: never before the whole batch ended.
    env.assert_state(&jid("ok"), JobState::Cancelled).await;
    assert_eq!(
        env.field(&jid("ok"), "error").await.as_deref(),
        Some("parent step p1 dead")
    );
    env.assert_state(&jid("alert"), JobState::Waiting).await;
    env.assert_state(&jid("done"), JobState::Waiting).await;
    run(&env, "p2").await;
    let mut pending = env.members(JobState::Pending).await;
    pending.sort();
    assert_eq!(pending, ["alert", "done"].map(jid));
    assert_eq!(
        env.field(&jid("alert"), "parent_failed").await.as_deref(),
        Some("p1")
    );
    run(&env, "done").await;
    run(&env, "alert").await;
    run(&env, "page").await;
    let insp = inspector(&env);
    let info = insp.flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Failed);
    assert_eq!(
        callback_states(&info),
        BTreeMap::from([
            ("alert", "completed"),
            ("done", "completed"),
            ("ok", "cancelled"),
            ("page", "completed"),
        ])
    );

    // Retried, p1 succeeds: on_success runs now; on_failure ran already and stays.
    assert_eq!(insp.retry_flow("f").await.unwrap().retried, 2);
    run(&env, "p1").await;
    run(&env, "ok").await;
    let info = insp.flow("f").await.unwrap();
    assert_eq!(info.state, FlowState::Succeeded);
    assert!(env.members(JobState::Pending).await.is_empty());
}

#[tokio::test]
async fn a_retried_on_failure_step_whose_batch_succeeded_is_skipped() {
    let env = start().await;
    submit(&env, &batch()).await;
    let insp = inspector(&env);
    // The workflow is cancelled while p1 runs: every callback is cancelled with it.
    let fence = env.claim_next(&jid("p1")).await;
    insp.cancel_flow("f").await.unwrap();
    env.broker
        .fail(
            &env.keys,
            &KEEP,
            &jid("p1"),
            fence,
            "cancelled",
            FailMode::Cancel,
        )
        .await
        .unwrap();
    assert_eq!(insp.flow("f").await.unwrap().state, FlowState::Cancelled);

    insp.retry_flow("f").await.unwrap();
    run(&env, "p1").await;
    run(&env, "p2").await;
    // Nothing in the batch failed this time: on_failure is skipped, not run.
    env.assert_state(&jid("alert"), JobState::Completed).await;
    assert_eq!(
        env.field(&jid("alert"), "skipped").await.as_deref(),
        Some("no parent failed")
    );
    for s in ["done", "ok", "page"] {
        run(&env, s).await;
    }
    assert_eq!(insp.flow("f").await.unwrap().state, FlowState::Succeeded);
}

#[tokio::test]
async fn the_workflow_list_shows_each_workflow_until_its_retention_runs_out() {
    let env = start().await;
    let insp = inspector(&env);
    let chain = |id: &str| {
        Workflow::new(Q, "chain")
            .id(id)
            .step(step("a"))
            .step(step("b").after(["a"]))
    };
    // f is kept 1 s after it ends, g (newer, or in the same millisecond and after f by id)
    // for the test's retention.
    assert!(
        env.broker
            .submit_flow(&chain("f"), "f", 1000)
            .await
            .unwrap()
    );
    assert!(submit(&env, &chain("g")).await);
    let list = insp.flows(Some(Q), 10).await.unwrap().flows;
    let ids: Vec<(&str, FlowState)> = list.iter().map(|f| (f.id.as_str(), f.state)).collect();
    assert_eq!(ids, [("g", FlowState::Waiting), ("f", FlowState::Waiting)]);
    assert_eq!(list[0].steps, 2);
    assert_eq!(insp.flows(Some(Q), 1).await.unwrap().flows.len(), 1);

    // f's first step starts: running (nothing ended yet); then f succeeds.
    let fence = env.claim_next("flow:f:a").await;
    assert_eq!(
        insp.flows(Some(Q), 10).await.unwrap().flows[1].state,
        FlowState::Running
    );
    env.broker
        .ack(
            &env.keys,
            &KEEP,
            &[("flow:f:a".into(), fence, String::new())],
        )
        .await
        .unwrap();
    let fence = env.claim_next("flow:g:a").await;
    env.broker
        .fail(&env.keys, &KEEP, "flow:g:a", fence, "boom", FailMode::Kill)
        .await
        .unwrap();
    let fence = env.claim_next("flow:f:b").await;
    env.broker
        .ack(
            &env.keys,
            &KEEP,
            &[("flow:f:b".into(), fence, String::new())],
        )
        .await
        .unwrap();
    let list = insp.flows(Some(Q), 10).await.unwrap().flows;
    assert_eq!(list[0].state, FlowState::Failed);
    assert_eq!(
        list[0].ended,
        BTreeMap::from([("cancelled".into(), 1), ("dead".into(), 1)])
    );
    assert_eq!(list[1].state, FlowState::Succeeded);
    assert!(list[1].finished_at.is_some());

    // f's retention runs out: its hash expires, and the janitor takes it out of the index.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env
        .conn
        .clone()
        .exists::<_, bool>(env.keys.flow("f"))
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "f's hash did not expire"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Gone from the list at once (the hash is what counts), from the index with the janitor.
    let ids: Vec<String> = insp
        .flows(Some(Q), 10)
        .await
        .unwrap()
        .flows
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, ["g"]);
    // (Its step jobs go too: completed jobs kept for no time here.)
    let no_completed = Retention {
        completed_for: Duration::ZERO,
        ..KEEP
    };
    env.broker
        .janitor(&env.keys, &no_completed, 100, false)
        .await
        .unwrap();
    let indexed: Vec<String> = env
        .conn
        .clone()
        .zrange(&env.keys.flows, 0, -1)
        .await
        .unwrap();
    assert_eq!(indexed, ["g"]);
    let ends: Vec<String> = env
        .conn
        .clone()
        .zrange(&env.keys.flow_ends, 0, -1)
        .await
        .unwrap();
    assert_eq!(ends, ["g"]);

    // Submitted again after it is gone, f is a new workflow, listed until it ends.
    assert!(
        env.broker
            .submit_flow(&chain("f"), "f", 1000)
            .await
            .unwrap()
    );
    assert_eq!(insp.flows(Some(Q), 10).await.unwrap().flows[0].id, "f");
    let ends: Vec<String> = env
        .conn
        .clone()
        .zrange(&env.keys.flow_ends, 0, -1)
        .await
        .unwrap();
    assert_eq!(ends, ["g"]);

    // Every queue's: the same here, one queue.
    assert_eq!(insp.flows(None, 10).await.unwrap().flows.len(), 2);
    let err = insp.flows(None, 0).await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{err}");
}
