//! `queue ls | pause | resume | purge | limit | shards`.

use crate::config::Redis;
use crate::output;
use tickq::{JobState, QueueCounts};

pub async fn list(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let stats = client.inspector().stats().await?;
    if json {
        // The document of `GET /api/queues` (and `tickq stats --json`).
        return Ok(output::json(&stats)?);
    }
    let stats = stats.queues;
    if stats.is_empty() {
        output::text("no queues yet; `tickq enqueue QUEUE KIND` creates one")?;
    } else {
        let lines: Vec<String> = stats.iter().map(describe).collect();
        output::text(&lines.join("\n"))?;
    }
    Ok(())
}

/// `emails (paused; concurrency 3, rate 50/1s)`.
fn describe(q: &QueueCounts) -> String {
    let mut notes = Vec::new();
    if q.paused {
        notes.push("paused".to_owned());
    }
    if !q.limits.is_unlimited() {
        notes.push(q.limits.to_string());
    }
    if notes.is_empty() {
        q.queue.clone()
    } else {
        format!("{} ({})", q.queue, notes.join("; "))
    }
}

/// Show a queue's limits, or change them (the flags given replace those limits; the others
/// stay).
pub async fn limit(
    redis: &Redis,
    queue: &str,
    change: Option<tickq::LimitsChange>,
    json: bool,
) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let inspector = client.inspector();
    let view = match change {
        Some(change) => inspector.change_limits(queue, change).await?,
        None => inspector.limits(queue).await?,
    };
    let limits = view.limits;
    if json {
        output::json(&view)?;
    } else if limits.is_unlimited() {
        output::text(&format!("queue {queue}: no limits"))?;
    } else {
        output::text(&format!("queue {queue}: {limits}"))?;
    }
    Ok(())
}

pub async fn pause(redis: &Redis, queue: &str, paused: bool, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let inspector = client.inspector();
    let done = if paused {
        inspector.pause_queue(queue).await?
    } else {
        inspector.resume_queue(queue).await?
    };
    if json {
        return Ok(output::json(&done)?);
    }
    let was = done.paused != done.changed;
    let text = match (paused, was) {
        (true, false) => format!("queue {queue} paused; running jobs finish, none start"),
        (true, true) => format!("queue {queue} was paused already"),
        (false, true) => format!("queue {queue} resumed"),
        (false, false) => format!("queue {queue} was not paused"),
    };
    Ok(output::text(&text)?)
}

pub async fn purge(redis: &Redis, queue: &str, state: JobState, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let purged = client.inspector().purge(queue, state).await?;
    if json {
        output::json(&purged)?;
    } else {
        output::text(&purged.purged.to_string())?;
    }
    Ok(())
}

/// `queue shards`: one line per physical queue of a (sharded) queue.
pub async fn shards(redis: &Redis, queue: &str, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let parts = client.inspector().shards(queue).await?;
    if json {
        return Ok(output::json(&parts)?);
    }
    let mut table =
        output::Table::new(["SHARD", "QUEUE", "SLOT", "WAITING", "ACTIVE", "PROCESSED"]);
    for p in &parts {
        let state = |s: JobState| p.counts.states.get(&s).copied().unwrap_or(0);
        let waiting =
            state(JobState::Pending) + state(JobState::Scheduled) + state(JobState::Retry);
        table.row(vec![
            p.shard.map_or("base".to_owned(), |s| s.to_string()),
            p.counts.queue.clone(),
            p.slot.to_string(),
            waiting.to_string(),
            state(JobState::Active).to_string(),
            p.counts.processed.to_string(),
        ]);
    }
    output::text(&table.render())?;
    Ok(())
}
