//! Workflows: a 1,000-step fan-out/fan-in (one root, 998 steps after it, one step after all of
//! them) against the same 1,000 no-op jobs enqueued plainly, each drained by one worker of
//! concurrency 64. Reports the submit time of each, the drain wall time of each (worker start
//! to the last job acked), and the difference per step: what settling the DAG costs.
//! `flow-1000-queues`: the same DAG with its 998 middle steps spread over three other queues
//! (root and sink in the home queue), so all 1,996 of its edges cross queues and go through
//! the outbox and the relay (docs/workflows.md, "Steps in other queues").

use super::{BgWorker, Deadline, Measured, QUEUE, Target, connect, ms};
use anyhow::{Result, ensure};
use std::time::Instant;
use tickq::{Client, Job, JobError, NewJob, Step, Worker, Workflow};

const STEPS: u64 = 1000;

/// The queues the cross-queue variant spreads its middle steps over.
const OTHER_QUEUES: [&str; 3] = ["bench-b", "bench-c", "bench-d"];

/// The worker: the home queue, and with `across` the other queues too.
fn worker(client: &Client, across: bool) -> Result<Worker> {
    let mut builder = Worker::builder(client)
        .queue(QUEUE, 1)
        .concurrency(64)
        .handler("noop", |_job: Job| async move { Ok::<_, JobError>(()) });
    if across {
        for q in OTHER_QUEUES {
            builder = builder.queue(q, 1);
        }
    }
    Ok(builder.build()?)
}

/// Start a worker and wait until `processed` (over every queue) reaches `target`; seconds it
/// took.
async fn drain(client: &Client, target: u64, deadline: Deadline, across: bool) -> Result<f64> {
    let started = Instant::now();
    let w = BgWorker::spawn(worker(client, across)?);
    let inspector = client.inspector();
    deadline
        .wait_for("waiting for every job to be acked", ms(2), async || {
            let mut processed = inspector.counts(QUEUE).await?.processed;
            if across {
                for q in OTHER_QUEUES {
                    processed += inspector.counts(q).await?.processed;
                }
            }
            Ok(processed >= target)
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    w.stop().await?;
    Ok(secs)
}

/// `across`: the middle steps in [`OTHER_QUEUES`], round robin.
pub async fn fan_in(target: &Target, deadline: Deadline, across: bool) -> Result<Measured> {
    let client = connect(target).await?;

    let t = Instant::now();
    client
        .enqueue_bulk((0..STEPS).map(|_| NewJob::new(QUEUE, "noop")).collect())
        .await?;
    let plain_submit = t.elapsed().as_secs_f64();
    let plain_wall = drain(&client, STEPS, deadline, across).await?;

    let mut flow =
        Workflow::new(QUEUE, "fan-out-fan-in").step(Step::new("root", NewJob::new(QUEUE, "noop")));
    let middle: Vec<String> = (0..STEPS - 2).map(|i| format!("m{i}")).collect();
    for (i, m) in middle.iter().enumerate() {
        let queue = if across {
            OTHER_QUEUES[i % OTHER_QUEUES.len()]
        } else {
            QUEUE
        };
        flow = flow.step(Step::new(m, NewJob::new(queue, "noop")).after(["root"]));
    }
    flow = flow.step(Step::new("sink", NewJob::new(QUEUE, "noop")).after(middle));
    let t = Instant::now();
    let submitted = client.submit_flow(flow).await?;
    let flow_submit = t.elapsed().as_secs_f64();
    let flow_wall = drain(&client, 2 * STEPS, deadline, across).await?;
    let info = client.inspector().flow(&submitted.id).await?;
    ensure!(
        info.counts.get("completed") == Some(&STEPS),
        "the workflow did not complete every step: {:?}",
        info.counts
    );

    let mut m = Measured::default();
    m.metric("plain: enqueue 1,000", "ms", plain_submit * 1e3);
    m.metric("workflow: submit 1,000 steps", "ms", flow_submit * 1e3);
    m.metric("plain: drain", "ms", plain_wall * 1e3);
    m.metric("workflow: drain", "ms", flow_wall * 1e3);
    m.metric(
        "workflow overhead per step",
        "µs",
        (flow_wall - plain_wall + flow_submit - plain_submit) / STEPS as f64 * 1e6,
    );
    m.fact("steps", STEPS);
    m.fact("queues", if across { 1 + OTHER_QUEUES.len() } else { 1 });
    Ok(m)
}
