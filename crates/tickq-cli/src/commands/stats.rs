//! `stats`.

use crate::config::Redis;
use crate::output::{self, Table};
use tickq::JobState;

pub async fn stats(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let stats = client.inspector().stats().await?;
    if json {
        output::json(&stats)?;
        return Ok(());
    }
    let stats = stats.queues;
    if stats.is_empty() {
        output::text("no queues yet; `tickq enqueue QUEUE KIND` creates one")?;
        return Ok(());
    }
    let mut header = vec!["QUEUE".to_owned()];
    header.extend(JobState::ALL.iter().map(|s| s.as_str().to_uppercase()));
    header.extend(["PROCESSED", "FAILED", "PAUSED"].map(str::to_owned));
    let mut table = Table::with_header(header);
    for q in &stats {
        let mut row = vec![q.queue.clone()];
        row.extend(
            JobState::ALL
                .iter()
                .map(|s| q.states.get(s).copied().unwrap_or(0).to_string()),
        );
        row.push(q.processed.to_string());
        row.push(q.failed.to_string());
        row.push(if q.paused { "yes" } else { "no" }.to_owned());
        table.row(row);
    }
    output::text(&table.render())?;
    Ok(())
}
