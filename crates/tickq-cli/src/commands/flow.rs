//! `tickq flow run | show | cancel | retry`: workflows (docs/workflows.md).

use crate::config::{FlowVerb, Redis};
use crate::output::{self, Table};

/// `tickq flow run FILE`: prints the workflow id.
pub async fn run(redis: &Redis, flow: tickq::Workflow, json: bool) -> anyhow::Result<()> {
    let submitted = crate::connect::connect(redis)
        .await?
        .submit_flow(flow)
        .await?;
    if json {
        output::json(&submitted)?;
    } else if submitted.created {
        output::text(&submitted.id)?;
    } else {
        output::text(&format!(
            "{} (exists already; nothing was created)",
            submitted.id
        ))?;
    }
    Ok(())
}

/// `tickq flow ls [QUEUE]`: newest first, across every queue without one.
pub async fn ls(
    redis: &Redis,
    queue: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let list = crate::connect::connect(redis)
        .await?
        .inspector()
        .flows(queue, limit)
        .await?;
    if json {
        return Ok(output::json(&list)?);
    }
    let flows = list.flows;
    if flows.is_empty() {
        return Ok(output::text("no workflows")?);
    }
    let mut table = Table::new(["ID", "NAME", "QUEUE", "STATE", "STEPS", "ENDED", "CREATED"]);
    for f in &flows {
        let ended: Vec<String> = f.ended.iter().map(|(s, n)| format!("{n} {s}")).collect();
        table.row(vec![
            f.id.clone(),
            output::clip(&f.name, 30),
            f.queue.clone(),
            serde_json::to_value(f.state)?
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            f.steps.to_string(),
            ended.join(", "),
            f.created_at.map(|t| t.to_string()).unwrap_or_default(),
        ]);
    }
    output::text(&table.render())?;
    Ok(())
}

/// `tickq flow show|cancel|retry ID`.
pub async fn act(redis: &Redis, verb: FlowVerb, id: &str, json: bool) -> anyhow::Result<()> {
    let inspector = crate::connect::connect(redis).await?.inspector();
    match verb {
        FlowVerb::Show => {
            let info = inspector.flow(id).await?;
            if json {
                return Ok(output::json(&info)?);
            }
            let counts: Vec<String> = info
                .counts
                .iter()
                .map(|(state, n)| format!("{n} {state}"))
                .collect();
            let mut text = format!(
                "workflow {} ({}) in queue {}: {}; {}\n",
                info.id,
                info.name,
                info.queue,
                serde_json::to_value(info.state)?.as_str().unwrap_or("?"),
                counts.join(", ")
            );
            let mut table = Table::new(["STEP", "STATE", "AFTER", "QUEUE", "JOB", "ERROR"]);
            for step in &info.steps {
                table.row(vec![
                    step.id.clone(),
                    step.state.clone(),
                    step.after.join(","),
                    step.queue.clone(),
                    step.job_id.clone(),
                    output::clip(step.error.as_deref().unwrap_or(""), 60),
                ]);
            }
            text.push_str(&table.render());
            output::text(&text)?;
        }
        FlowVerb::Cancel => {
            let out = inspector.cancel_flow(id).await?;
            if json {
                return Ok(output::json(&out)?);
            }
            output::text(&format!(
                "workflow {id}: {} steps cancelled, {} running steps asked to stop",
                out.cancelled, out.cancelling
            ))?;
        }
        FlowVerb::Retry => {
            let out = inspector.retry_flow(id).await?;
            if json {
                return Ok(output::json(&out)?);
            }
            output::text(&format!(
                "workflow {id}: {} failed steps started over",
                out.retried
            ))?;
        }
    }
    Ok(())
}
