//! One job and lists of jobs: `job`, `jobs`, `retry`, `delete`, `cancel`.

use crate::config::Redis;
use crate::output::{self, Table, clip};
use crate::parse::format_duration;
use jiff::Timestamp;
use std::time::Duration;
use tickq::{CancelOutcome, Inspector, JobInfo, JobState};

async fn inspector(redis: &Redis) -> anyhow::Result<Inspector> {
    Ok(crate::connect::connect(redis).await?.inspector())
}

pub async fn job(redis: &Redis, id: &str, json: bool) -> anyhow::Result<()> {
    let job = inspector(redis).await?.find_job(id).await?;
    if json {
        output::json(&job)?;
    } else {
        output::text(&describe(&job))?;
    }
    Ok(())
}

fn describe(job: &JobInfo) -> String {
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
    let meta = (!job.meta.is_empty()).then(|| {
        job.meta
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let cancel = job.cancel_requested.then(|| "requested".to_owned());
    output::fields(&[
        ("id", Some(job.id.clone())),
        ("queue", Some(job.queue.clone())),
        ("kind", Some(job.kind.clone())),
        ("state", Some(job.state.to_string())),
        (
            "attempt",
            Some(format!("{}/{}", job.attempt, job.max_attempts)),
        ),
        ("priority", Some(job.priority.to_string())),
        ("fence", Some(job.fence.to_string())),
        (
            "timeout",
            job.timeout_ms
                .map(|ms| format_duration(Duration::from_millis(ms))),
        ),
        ("created", time(job.created_at)),
        ("due", time(job.due_at)),
        ("started", time(job.started_at)),
        ("finished", time(job.finished_at)),
        ("lease until", time(job.lease_until)),
        ("worker", job.worker.clone()),
        ("cancel", cancel),
        ("meta", meta),
        ("payload", Some(job.payload.to_string())),
        ("last error", job.last_error.clone()),
        ("result", job.result.clone()),
        ("corrupt", job.corrupt.clone()),
    ])
}

pub async fn list(
    redis: &Redis,
    queue: &str,
    state: Option<JobState>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let inspector = inspector(redis).await?;
    let states = match state {
        Some(state) => vec![state],
        None => JobState::ALL.to_vec(),
    };
    let mut jobs = Vec::new();
    for state in states {
        if jobs.len() >= limit {
            break;
        }
        jobs.extend(inspector.jobs(queue, state, 0, limit - jobs.len()).await?);
    }
    if json {
        output::json(&serde_json::json!({
            "queue": queue,
            "state": state,
            "jobs": jobs,
        }))?;
        return Ok(());
    }
    if jobs.is_empty() {
        let which = state.map(|s| format!(" {s}")).unwrap_or_default();
        output::text(&format!("no{which} jobs in queue {queue}"))?;
        return Ok(());
    }
    let mut table = Table::new(["ID", "STATE", "KIND", "ATTEMPT", "DUE", "LAST ERROR"]);
    for job in &jobs {
        table.row(vec![
            job.id.clone(),
            job.state.to_string(),
            job.kind.clone(),
            format!("{}/{}", job.attempt, job.max_attempts),
            job.due_at.map(|t| t.to_string()).unwrap_or_default(),
            clip(job.last_error.as_deref().unwrap_or(""), 60),
        ]);
    }
    output::text(&table.render())?;
    Ok(())
}

pub async fn retry(redis: &Redis, id: &str, json: bool) -> anyhow::Result<()> {
    let inspector = inspector(redis).await?;
    let job = inspector.find_job(id).await?;
    let was = inspector.retry(&job.queue, id).await?;
    if json {
        output::json(&serde_json::json!({
            "id": id,
            "queue": job.queue,
            "previous_state": was,
            "state": JobState::Pending,
        }))?;
    } else {
        output::text(&format!("job {id} ({was}) is pending again"))?;
    }
    Ok(())
}

pub async fn kill(redis: &Redis, id: &str, json: bool) -> anyhow::Result<()> {
    let inspector = inspector(redis).await?;
    let job = inspector.find_job(id).await?;
    let was = inspector.kill(&job.queue, id).await?;
    if json {
        output::json(&serde_json::json!({
            "id": id,
            "queue": job.queue,
            "previous_state": was,
            "state": JobState::Dead,
        }))?;
    } else {
        output::text(&format!("job {id} ({was}) is dead"))?;
    }
    Ok(())
}

pub async fn delete(redis: &Redis, id: &str, json: bool) -> anyhow::Result<()> {
    let inspector = inspector(redis).await?;
    let job = inspector.find_job(id).await?;
    let was = inspector.delete(&job.queue, id).await?;
    if json {
        output::json(&serde_json::json!({
            "id": id,
            "queue": job.queue,
            "previous_state": was,
            "deleted": true,
        }))?;
    } else {
        output::text(&format!("job {id} ({was}) deleted"))?;
    }
    Ok(())
}

pub async fn cancel(redis: &Redis, id: &str, json: bool) -> anyhow::Result<()> {
    let inspector = inspector(redis).await?;
    let job = inspector.find_job(id).await?;
    let outcome = inspector.cancel(&job.queue, id).await?;
    let (state, message) = match outcome {
        CancelOutcome::Cancelled => ("cancelled", format!("job {id} cancelled")),
        CancelOutcome::Cancelling => (
            "cancelling",
            format!("job {id} is running; its worker was asked to stop it"),
        ),
    };
    if json {
        output::json(&serde_json::json!({
            "id": id,
            "queue": job.queue,
            "outcome": state,
        }))?;
    } else {
        output::text(&message)?;
    }
    Ok(())
}
