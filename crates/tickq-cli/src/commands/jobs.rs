//! One job and lists of jobs: `job`, `jobs`, `bulk`, `retry`, `kill`, `delete`, `cancel`.
//! Every `--json` document is the library's own type, the same the HTTP API sends.

use crate::config::Redis;
use crate::output::{self, Table, clip};
use jiff::Timestamp;
use std::time::Duration;
use tickq::units::format_duration;
use tickq::{Inspector, JobActed, JobAction, JobFilter, JobInfo, JobPage, JobState};

async fn inspector(redis: &Redis) -> anyhow::Result<Inspector> {
    Ok(crate::connect::connect(redis).await?.inspector())
}

/// `tickq job ID [--wait [--timeout DUR]]`.
pub async fn job(
    redis: &Redis,
    id: &str,
    wait: Option<Option<Duration>>,
    json: bool,
) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let mut job = client.inspector().job(id).await?;
    if let Some(timeout) = wait {
        // No timeout: wait as long as it takes (a century is long enough).
        let timeout = timeout.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
        job = client.wait(&job.queue, id, timeout).await?;
    }
    if json {
        output::json(&job)?;
    } else {
        output::text(&describe(&job))?;
    }
    if wait.is_some() && job.state != JobState::Completed {
        anyhow::bail!("job {id} ended {}", job.state);
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
        (
            "progress",
            job.progress.as_ref().map(|p| {
                let pct = format!("{:.0}%", p.value * 100.0);
                if p.message.is_empty() {
                    pct
                } else {
                    format!("{pct} {}", p.message)
                }
            }),
        ),
        ("meta", meta),
        ("payload", Some(job.payload.to_string())),
        ("last error", job.last_error.clone()),
        ("result", job.result.clone()),
        ("corrupt", job.corrupt.clone()),
    ])
}

/// `tickq jobs QUEUE [--state S] [filters] [--cursor C] [--limit N]`.
pub async fn list(
    redis: &Redis,
    queue: &str,
    state: Option<JobState>,
    filter: &JobFilter,
    cursor: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let inspector = inspector(redis).await?;
    let page = match state {
        Some(state) => inspector.jobs(queue, state, filter, cursor, limit).await?,
        // Every state, in lifecycle order, up to the limit: a first look at a queue.
        None => {
            let mut all = JobPage {
                queue: queue.to_owned(),
                state: None,
                jobs: Vec::new(),
                next_cursor: None,
                scanned: 0,
            };
            for state in JobState::ALL {
                let left = limit - all.jobs.len();
                if left == 0 {
                    break;
                }
                let page = inspector.jobs(queue, state, filter, None, left).await?;
                all.scanned += page.scanned;
                all.jobs.extend(page.jobs);
            }
            all
        }
    };
    if json {
        output::json(&page)?;
        return Ok(());
    }
    if page.jobs.is_empty() {
        let which = state.map(|s| format!(" {s}")).unwrap_or_default();
        let more = match &page.next_cursor {
            Some(c) => format!(
                " among the first {} looked at; more: --cursor '{c}'",
                page.scanned
            ),
            None => String::new(),
        };
        output::text(&format!("no{which} jobs in queue {queue}{more}"))?;
        return Ok(());
    }
    let mut table = Table::new(["ID", "STATE", "KIND", "ATTEMPT", "DUE", "LAST ERROR"]);
    for job in &page.jobs {
        table.row(vec![
            job.id.clone(),
            job.state.to_string(),
            job.kind.clone(),
            format!("{}/{}", job.attempt, job.max_attempts),
            job.due_at.map(|t| t.to_string()).unwrap_or_default(),
            clip(job.last_error.as_deref().unwrap_or(""), 60),
        ]);
    }
    let mut text = table.render();
    if let Some(cursor) = &page.next_cursor {
        text.push_str(&format!("more: --cursor '{cursor}'\n"));
    }
    output::text(&text)?;
    Ok(())
}

/// `tickq retry|kill|delete|cancel ID`.
pub async fn act(redis: &Redis, action: JobAction, id: &str, json: bool) -> anyhow::Result<()> {
    let acted = inspector(redis).await?.act(action, id).await?;
    if json {
        output::json(&acted)?;
    } else {
        output::text(&acted_text(&acted))?;
    }
    Ok(())
}

fn acted_text(a: &JobActed) -> String {
    let (id, was) = (&a.id, a.previous_state);
    match a.action {
        JobAction::Retry => format!("job {id} ({was}) is pending again"),
        JobAction::Kill => format!("job {id} ({was}) is dead"),
        JobAction::Delete => format!("job {id} ({was}) deleted"),
        JobAction::Cancel if a.state == Some(JobState::Active) => {
            format!("job {id} is running; its worker was asked to stop it")
        }
        JobAction::Cancel => format!("job {id} cancelled"),
        other => format!("job {id} ({was}): {} done", other.as_str()),
    }
}

/// `tickq bulk QUEUE ACTION --state S [filters] [--dry-run]`.
pub async fn bulk(
    redis: &Redis,
    queue: &str,
    action: JobAction,
    state: JobState,
    filter: &JobFilter,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let outcome = inspector(redis)
        .await?
        .bulk(queue, state, filter, action, dry_run)
        .await?;
    if json {
        output::json(&outcome)?;
    } else if dry_run {
        output::text(&format!(
            "{} {state} jobs of queue {queue} match; nothing done (--dry-run)",
            outcome.matched
        ))?;
    } else {
        output::text(&format!(
            "{} {state} jobs of queue {queue} matched; {} {}",
            outcome.matched,
            outcome.acted,
            match action {
                JobAction::Retry => "retried",
                JobAction::Kill => "killed",
                JobAction::Delete => "deleted",
                JobAction::Cancel => "cancelled",
                other => other.as_str(),
            }
        ))?;
    }
    Ok(())
}
