//! Workflows: a 1,000-step fan-out/fan-in (one root, 998 steps after it, one step after all of
//! them) against the same 1,000 no-op jobs enqueued plainly, each drained by one worker of
//! concurrency 64. Reports the submit time of each, the drain wall time of each (worker start
//! to the last job acked), and the difference per step: what settling the DAG costs.

use super::{BgWorker, Deadline, Measured, QUEUE, Target, connect, ms};
use anyhow::{Result, ensure};
use std::time::Instant;
use tickq::{Client, Job, JobError, NewJob, Step, Worker, Workflow};

const STEPS: u64 = 1000;

fn worker(client: &Client) -> Result<Worker> {
    Ok(Worker::builder(client)
        .queue(QUEUE, 1)
        .concurrency(64)
        .handler("noop", |_job: Job| async move { Ok::<_, JobError>(()) })
        .build()?)
}

/// Start a worker and wait until `processed` reaches `target`; seconds it took.
async fn drain(client: &Client, target: u64, deadline: Deadline) -> Result<f64> {
    let started = Instant::now();
    let w = BgWorker::spawn(worker(client)?);
    let inspector = client.inspector();
    deadline
        .wait_for("waiting for every job to be acked", ms(2), async || {
            Ok(inspector.counts(QUEUE).await?.processed >= target)
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    w.stop().await?;
    Ok(secs)
}

pub async fn fan_in(target: &Target, deadline: Deadline) -> Result<Measured> {
    let client = connect(target).await?;

    let t = Instant::now();
    client
        .enqueue_bulk((0..STEPS).map(|_| NewJob::new(QUEUE, "noop")).collect())
        .await?;
    let plain_submit = t.elapsed().as_secs_f64();
    let plain_wall = drain(&client, STEPS, deadline).await?;

    let mut flow =
        Workflow::new(QUEUE, "fan-out-fan-in").step(Step::new("root", NewJob::new(QUEUE, "noop")));
    let middle: Vec<String> = (0..STEPS - 2).map(|i| format!("m{i}")).collect();
    for m in &middle {
        flow = flow.step(Step::new(m, NewJob::new(QUEUE, "noop")).after(["root"]));
    }
    flow = flow.step(Step::new("sink", NewJob::new(QUEUE, "noop")).after(middle));
    let t = Instant::now();
    let submitted = client.submit_flow(flow).await?;
    let flow_submit = t.elapsed().as_secs_f64();
    let flow_wall = drain(&client, 2 * STEPS, deadline).await?;
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
    Ok(m)
}
