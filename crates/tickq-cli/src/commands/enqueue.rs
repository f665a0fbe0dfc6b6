//! `enqueue` and `exec` (an enqueue of kind exec: `config.rs` builds its payload).

use crate::config::Redis;
use crate::output;
use tickq::NewJob;

pub async fn enqueue(redis: &Redis, job: NewJob, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let enqueued = client.enqueue(job).await?;
    if json {
        output::json(&serde_json::json!({
            "id": enqueued.id,
            "queue": enqueued.queue,
            "state": enqueued.state,
        }))?;
    } else {
        output::text(&enqueued.id)?;
    }
    Ok(())
}
