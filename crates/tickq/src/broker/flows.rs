//! Workflows in Redis: submit one all or nothing, read one back, mark it cancelled, start its
//! failed steps over. Ending a step and settling its children happens in the scripts that end
//! jobs (`flow_ended` in lua/prelude.lua).

use super::Broker;
use super::keys::QueueKeys;
use super::message::Envelope;
use super::scripts::SCRIPTS;
use crate::flow::{Workflow, step_job_id};
use crate::{Error, ErrorKind, Result};
use std::collections::HashMap;

impl Broker {
    /// Create `flow` under `id` in one script call; answers whether it was created (`false`:
    /// a workflow with this id exists, nothing changed).
    pub(crate) async fn submit_flow(
        &self,
        flow: &Workflow,
        id: &str,
        keep_ms: u64,
    ) -> Result<bool> {
        let flow = &*flow.resolved()?;
        let order = flow.topological_order()?;
        // New jobs, like an enqueue: refused above the memory high-water mark (memory.rs).
        self.check_room().await?;
        self.register_queue(&flow.queue).await?;
        let keys = self.keys(&flow.queue);
        let definition = serde_json::to_string(&flow.definition(id))
            .map_err(|e| Error::invalid(format!("workflow does not serialise: {e}")))?;
        let children = flow.children();
        let mut inv = SCRIPTS.flow_submit.prepare_invoke();
        inv.key(&keys.pending)
            .key(&keys.waiting)
            .key(&keys.seq)
            .key(&keys.wake)
            .key(keys.flow(id))
            .key(&keys.flows)
            .key(&keys.flow_ends);
        inv.arg(&keys.job_prefix)
            .arg(step_job_id(id, ""))
            .arg(&flow.name)
            .arg(keep_ms.max(1))
            .arg(definition);
        for i in order {
            let step = &flow.steps[i];
            let mut job = step.job.clone();
            job.meta.insert("flow".into(), id.to_owned());
            job.meta.insert("step".into(), step.id.clone());
            if !step.after.is_empty() {
                job.meta.insert("after".into(), step.after.join(" "));
            }
            inv.arg(&step.id)
                .arg(Envelope::encode_new(&job))
                .arg(job.priority)
                .arg(job.max_attempts)
                .arg(step.after.len())
                .arg(step.on_parent_failure.as_str())
                .arg(children[i].join(" "));
        }
        let answer: String = inv.invoke_async(&mut self.conn.clone()).await?;
        match answer.as_str() {
            "created" => Ok(true),
            "exists" => Ok(false),
            other => match other.strip_prefix("conflict:") {
                Some(job) => Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "job {job} already exists in queue {}, so workflow {id} cannot be created \
                         (nothing was)",
                        flow.queue
                    ),
                )),
                None => Err(Error::corrupt(format!("flow_submit answered {other:?}"))),
            },
        }
    }

    /// The workflow hash, or `None` when there is none with this id in this queue.
    pub(crate) async fn flow_hash(
        &self,
        keys: &QueueKeys,
        id: &str,
    ) -> Result<Option<HashMap<String, String>>> {
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(keys.flow(id))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(if hash.contains_key("jp") {
            Some(hash)
        } else {
            None
        })
    }

    /// Whether workflow `id` exists in this queue.
    pub(crate) async fn flow_exists(&self, keys: &QueueKeys, id: &str) -> Result<bool> {
        Ok(redis::cmd("EXISTS")
            .arg(keys.flow(id))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// State and last error of each of these jobs (`None` for a job that is gone), in order,
    /// in one round trip.
    pub(crate) async fn job_states(
        &self,
        keys: &QueueKeys,
        ids: &[&str],
    ) -> Result<Vec<(Option<String>, Option<String>)>> {
        let records = super::record::get_many(&mut self.conn.clone(), keys, ids).await?;
        Ok(records
            .into_iter()
            .map(|fields| match fields {
                Some(f) => (
                    super::record::text(&f, "state"),
                    super::record::text(&f, "error"),
                ),
                None => (None, None),
            })
            .collect())
    }

    /// The results the workflow holds for these steps (`None`: the step ended without one),
    /// in order, in one round trip.
    pub(crate) async fn step_results(
        &self,
        keys: &QueueKeys,
        flow: &str,
        steps: &[&str],
    ) -> Result<Vec<Option<String>>> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys.flow(flow));
        for step in steps {
            cmd.arg(format!("r:{step}"));
        }
        Ok(cmd.query_async(&mut self.conn.clone()).await?)
    }

    /// Mark a workflow cancelled, so that no step ending from now on releases a child (each
    /// waiting child is cancelled instead). Answers `false` when the workflow is gone.
    pub(crate) async fn mark_flow_cancelled(&self, keys: &QueueKeys, id: &str) -> Result<bool> {
        let marked: i64 = SCRIPTS
            .flow_cancel
            .key(keys.flow(id))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(marked == 1)
    }

    /// Start the failed steps of a workflow over; `steps` are (step id, parents) with parents
    /// before children. Answers how many started over.
    pub(crate) async fn retry_flow(
        &self,
        keys: &QueueKeys,
        id: &str,
        steps: &[(String, Vec<String>)],
    ) -> Result<u64> {
        let mut inv = SCRIPTS.flow_retry.prepare_invoke();
        inv.key(&keys.pending)
            .key(&keys.waiting)
            .key(&keys.seq)
            .key(&keys.wake)
            .key(keys.flow(id))
            .key(&keys.dead)
            .key(&keys.cancelled)
            .key(&keys.completed);
        inv.arg(&keys.job_prefix);
        for (step, parents) in steps {
            inv.arg(step).arg(parents.join(" "));
        }
        let n: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
        if n < 0 {
            return Err(Error::not_found(format!(
                "no workflow {id} in queue {}",
                keys.name
            )));
        }
        Ok(n as u64)
    }
}
