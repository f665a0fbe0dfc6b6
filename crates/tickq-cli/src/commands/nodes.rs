//! `nodes` and `history`: what runs where, and what happened over time.

use crate::config::Redis;
use crate::output::{self, Table};
use tickq::HistoryQuery;

/// `tickq nodes`.
pub async fn nodes(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let list = crate::connect::connect(redis)
        .await?
        .inspector()
        .nodes()
        .await?;
    if json {
        output::json(&list)?;
        return Ok(());
    }
    if list.nodes.is_empty() {
        output::text("no live nodes; `tickq server` starts one")?;
        return Ok(());
    }
    let mut table = Table::new([
        "NODE", "VERSION", "HOST", "PID", "QUEUES", "RUNNING", "SEEN",
    ]);
    for node in &list.nodes {
        let queues: Vec<String> = node
            .queues
            .iter()
            .map(|q| format!("{}={}", q.queue, q.weight))
            .collect();
        table.row(vec![
            node.id.clone(),
            node.version.clone(),
            node.host.clone(),
            node.pid.to_string(),
            queues.join(","),
            format!("{}/{}", node.running.len(), node.concurrency),
            node.last_seen_at
                .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
                .unwrap_or_default(),
        ]);
    }
    let mut text = table.render();
    for node in list.nodes.iter().filter(|n| !n.running.is_empty()) {
        text.push_str(&format!("\n{} runs:\n", node.id));
        for job in &node.running {
            text.push_str(&format!(
                "  {} {} (fence {})\n",
                job.queue, job.id, job.fence
            ));
        }
    }
    output::text(&text)?;
    Ok(())
}

/// `tickq history`.
pub async fn history(redis: &Redis, query: &HistoryQuery, json: bool) -> anyhow::Result<()> {
    let history = crate::connect::connect(redis)
        .await?
        .inspector()
        .history(query)
        .await?;
    if json {
        output::json(&history)?;
        return Ok(());
    }
    let mut table = Table::new([
        "AT (UTC)",
        "ENQUEUED",
        "PROCESSED",
        "FAILED",
        "RETRIED",
        "DEAD",
        "RUN P50",
        "RUN P95",
    ]);
    let ms = |v: Option<u64>| v.map(|v| format!("<={v}ms")).unwrap_or_else(|| "-".into());
    for p in &history.points {
        table.row(vec![
            p.at.to_string(),
            p.enqueued.to_string(),
            p.processed.to_string(),
            p.failed.to_string(),
            p.retried.to_string(),
            p.dead.to_string(),
            ms(p.run_ms_p50),
            ms(p.run_ms_p95),
        ]);
    }
    output::text(&table.render())?;
    Ok(())
}
