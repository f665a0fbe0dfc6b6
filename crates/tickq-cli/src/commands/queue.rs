//! `queue ls | pause | resume | purge`.

use crate::config::Redis;
use crate::output;
use tickq::JobState;

pub async fn list(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let stats = client.inspector().stats().await?;
    if json {
        // `queues` stays a list of names, as it was before queues could be paused.
        let names: Vec<&str> = stats.iter().map(|q| q.queue.as_str()).collect();
        let paused: Vec<&str> = stats
            .iter()
            .filter(|q| q.paused)
            .map(|q| q.queue.as_str())
            .collect();
        output::json(&serde_json::json!({ "queues": names, "paused": paused }))?;
    } else if stats.is_empty() {
        output::text("no queues yet; `tickq enqueue QUEUE KIND` creates one")?;
    } else {
        let lines: Vec<String> = stats
            .iter()
            .map(|q| {
                if q.paused {
                    format!("{} (paused)", q.queue)
                } else {
                    q.queue.clone()
                }
            })
            .collect();
        output::text(&lines.join("\n"))?;
    }
    Ok(())
}

pub async fn pause(redis: &Redis, queue: &str, paused: bool, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let inspector = client.inspector();
    let was = if paused {
        inspector.pause_queue(queue).await?
    } else {
        inspector.resume_queue(queue).await?
    };
    if json {
        return Ok(output::json(&serde_json::json!({
            "queue": queue,
            "paused": paused,
            "changed": was != paused,
        }))?);
    }
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
    let count = client.inspector().purge(queue, state).await?;
    if json {
        output::json(&serde_json::json!({ "queue": queue, "state": state, "purged": count }))?;
    } else {
        output::text(&count.to_string())?;
    }
    Ok(())
}
