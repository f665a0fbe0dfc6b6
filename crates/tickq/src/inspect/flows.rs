//! Workflows: one workflow and its steps as a document (`tickq flow show --json`,
//! `GET /api/flows/{id}`), cancel a whole workflow, retry its failed steps.

use super::Inspector;
use crate::flow::{ParentFailure, StepDef, validate_flow_id};
use crate::job::ms_to_timestamp;
use crate::{CancelOutcome, Error, ErrorKind, Result};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FlowState {
    /// No step has started yet.
    Waiting,
    /// Some step has started and some step has not ended.
    Running,
    /// Every step ended completed or skipped.
    Succeeded,
    /// Every step ended, and at least one died or was cancelled.
    Failed,
    /// Every step ended after the workflow was cancelled.
    Cancelled,
}

/// One workflow and its steps: `tickq flow show --json`, `GET /api/flows/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowInfo {
    /// The workflow id.
    pub id: String,
    /// Its name (free text from its definition).
    pub name: String,
    /// The queue all its steps run in.
    pub queue: String,
    /// `waiting running succeeded failed cancelled`.
    pub state: FlowState,
    /// Whether it was cancelled as a whole (its state is `cancelled` once every step ended).
    pub cancel_requested: bool,
    /// When it was submitted.
    pub created_at: Option<Timestamp>,
    /// When its last step ended.
    pub finished_at: Option<Timestamp>,
    /// The steps, in the order of the definition.
    pub steps: Vec<FlowStepView>,
    /// How many steps are in each step state (only states that occur).
    pub counts: BTreeMap<String, u64>,
}

/// One step of a [`FlowInfo`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowStepView {
    /// The step id.
    pub id: String,
    /// Its job's id (`flow:<workflow id>:<step id>`).
    pub job_id: String,
    /// Its job's kind.
    pub kind: String,
    /// A job state (`waiting scheduled pending active retry completed dead cancelled`) or
    /// `skipped` (ended without running because a parent failed; counts as a success), or
    /// `gone` (its job was deleted by hand before the workflow recorded an end).
    pub state: String,
    /// The steps it runs after.
    pub after: Vec<String>,
    /// What a failed parent does to it.
    pub on_parent_failure: ParentFailure,
    /// The job's last error (for a cancelled step: the reason, e.g. `parent step a dead`).
    pub error: Option<String>,
    /// Its result, once it completed with one.
    pub result: Option<String>,
}

/// One workflow in a list ([`Inspector::flows`]): `tickq flow ls`, `GET /api/flows`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowSummary {
    /// The workflow id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// `waiting running succeeded failed cancelled`, as [`FlowInfo::state`].
    pub state: FlowState,
    /// How many steps it has.
    pub steps: u64,
    /// How many steps ended each way (`completed skipped dead cancelled`; only those that
    /// occur).
    pub ended: BTreeMap<String, u64>,
    /// When it was submitted.
    pub created_at: Option<Timestamp>,
    /// When its last step ended.
    pub finished_at: Option<Timestamp>,
}

/// A list of workflows, newest first: `tickq flow ls --json`, `GET /api/flows`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowList {
    /// The workflows.
    pub flows: Vec<FlowSummary>,
}

/// Most workflows [`Inspector::flows`] answers at once.
pub const MAX_FLOW_LIST: usize = 1000;

/// The answer to cancelling a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowCancelled {
    /// The workflow id.
    pub id: String,
    /// Steps cancelled now (waiting, pending, retry, and those that followed them).
    pub cancelled: u64,
    /// Running steps whose workers were asked to stop them.
    pub cancelling: u64,
}

/// The answer to retrying a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowRetried {
    /// The workflow id.
    pub id: String,
    /// Failed steps (dead or cancelled) started over.
    pub retried: u64,
}

/// The steps in an order where parents come before children (the definition was checked for
/// cycles when it was submitted).
fn parents_first(steps: &[StepDef]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut left: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut children = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for p in &s.after {
            if let Some(&p) = index.get(p.as_str()) {
                children[p].push(i);
            }
        }
    }
    let mut order: Vec<usize> = (0..steps.len()).filter(|&i| left[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        for &c in &children[order[next]] {
            left[c] -= 1;
            if left[c] == 0 {
                order.push(c);
            }
        }
        next += 1;
    }
    order
}

impl Inspector {
    /// The queue that holds workflow `id`.
    async fn flow_queue(&self, id: &str) -> Result<String> {
        validate_flow_id(id)?;
        // One call per queue, not a pipeline: on a Cluster the queues are in different slots.
        for queue in self.queues().await? {
            if self
                .broker
                .flow_exists(&self.broker.keys(&queue), id)
                .await?
            {
                return Ok(queue);
            }
        }
        Err(Error::not_found(format!(
            "no workflow {id} (it never existed, or it ended longer ago than its retention)"
        )))
    }

    async fn flow_definition(
        &self,
        queue: &str,
        id: &str,
    ) -> Result<(HashMap<String, String>, Vec<StepDef>)> {
        let keys = self.broker.keys(queue);
        let hash = self
            .broker
            .flow_hash(&keys, id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no workflow {id} in queue {queue}")))?;
        let def: Vec<StepDef> =
            serde_json::from_str(hash.get("def").map_or("", |d| d)).map_err(|e| {
                Error::corrupt(format!("workflow {id} has an unreadable definition: {e}"))
            })?;
        Ok((hash, def))
    }

    /// One workflow with the state of each step.
    pub async fn flow(&self, id: &str) -> Result<FlowInfo> {
        let queue = self.flow_queue(id).await?;
        let (hash, def) = self.flow_definition(&queue, id).await?;
        let keys = self.broker.keys(&queue);
        let ids: Vec<&str> = def.iter().map(|step| step.job_id.as_str()).collect();
        let jobs = self.broker.job_states(&keys, &ids).await?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut started = false;
        let steps: Vec<FlowStepView> = def
            .into_iter()
            .zip(jobs)
            .map(|(step, (job_state, error))| {
                let ended = hash.get(&format!("e:{}", step.id)).cloned();
                if ended.is_some() || matches!(job_state.as_deref(), Some("active" | "retry")) {
                    started = true;
                }
                let state = ended.or(job_state).unwrap_or_else(|| "gone".to_owned());
                *counts.entry(state.clone()).or_default() += 1;
                FlowStepView {
                    result: hash.get(&format!("r:{}", step.id)).cloned(),
                    id: step.id,
                    job_id: step.job_id,
                    kind: step.kind,
                    state,
                    after: step.after,
                    on_parent_failure: step.on_parent_failure,
                    error,
                }
            })
            .collect();
        let cancel_requested = hash.contains_key("cancel");
        let finished_ms = hash.get("finished").and_then(|f| f.parse::<i64>().ok());
        let failed = counts.contains_key("dead") || counts.contains_key("cancelled");
        let state = match (finished_ms.is_some(), cancel_requested, failed, started) {
            (true, true, _, _) => FlowState::Cancelled,
            (true, false, true, _) => FlowState::Failed,
            (true, false, false, _) => FlowState::Succeeded,
            (false, _, _, true) => FlowState::Running,
            (false, _, _, false) => FlowState::Waiting,
        };
        Ok(FlowInfo {
            id: id.to_owned(),
            name: hash.get("name").cloned().unwrap_or_default(),
            queue,
            state,
            cancel_requested,
            created_at: hash
                .get("created")
                .and_then(|c| c.parse().ok())
                .and_then(ms_to_timestamp),
            finished_at: finished_ms.and_then(ms_to_timestamp),
            steps,
            counts,
        })
    }

    /// The workflows of `queue` (every queue's when `None`), newest first, at most `limit`
    /// (1 to [`MAX_FLOW_LIST`]): those running and the finished ones within their retention
    /// (each queue's workflow index, docs/redis-keys.md). Per queue two round trips, plus one
    /// for each workflow none of whose steps has ended yet (to tell `waiting` from `running`
    /// by its first steps' jobs).
    pub async fn flows(&self, queue: Option<&str>, limit: usize) -> Result<FlowList> {
        if limit == 0 || limit > MAX_FLOW_LIST {
            return Err(Error::invalid(format!(
                "limit {limit}: list 1 to {MAX_FLOW_LIST} workflows at a time"
            )));
        }
        let queues = match queue {
            Some(q) => {
                crate::validate_queue_name(q)?;
                vec![q.to_owned()]
            }
            None => self.queues().await?,
        };
        let mut flows = Vec::new();
        for q in &queues {
            flows.extend(self.queue_flows(q, limit).await?);
        }
        // Newest first; within one millisecond by id, descending, as each index orders them
        // (ZRANGE ... REV).
        flows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        flows.truncate(limit);
        Ok(FlowList { flows })
    }

    async fn queue_flows(&self, queue: &str, limit: usize) -> Result<Vec<FlowSummary>> {
        let keys = self.broker.keys(queue);
        let mut conn = self.broker.conn();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&keys.flows)
            .arg("+inf")
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        const FIELDS: [&str; 10] = [
            "jp",
            "name",
            "created",
            "finished",
            "steps",
            "cancel",
            "completed",
            "skipped",
            "dead",
            "cancelled",
        ];
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(keys.flow(id)).arg(&FIELDS[..]);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::new();
        let mut unstarted = Vec::new();
        for (id, row) in ids.into_iter().zip(rows) {
            // Its hash expired and the index was not trimmed yet: it is gone.
            if row[0].is_none() {
                continue;
            }
            let num = |i: usize| row[i].as_deref().and_then(|v| v.parse::<u64>().ok());
            let ended: BTreeMap<String, u64> = (6..10)
                .filter_map(|i| num(i).filter(|&n| n > 0).map(|n| (FIELDS[i].to_owned(), n)))
                .collect();
            let finished_ms = row[3].as_deref().and_then(|f| f.parse::<i64>().ok());
            let failed = ended.contains_key("dead") || ended.contains_key("cancelled");
            let state = match (finished_ms.is_some(), row[5].is_some(), failed) {
                (true, true, _) => FlowState::Cancelled,
                (true, false, true) => FlowState::Failed,
                (true, false, false) => FlowState::Succeeded,
                (false, _, _) if !ended.is_empty() => FlowState::Running,
                (false, _, _) => {
                    unstarted.push(out.len());
                    FlowState::Waiting
                }
            };
            out.push(FlowSummary {
                name: row[1].clone().unwrap_or_default(),
                queue: queue.to_owned(),
                state,
                steps: num(4).unwrap_or(0),
                ended,
                created_at: row[2]
                    .as_deref()
                    .and_then(|c| c.parse().ok())
                    .and_then(ms_to_timestamp),
                finished_at: finished_ms.and_then(ms_to_timestamp),
                id,
            });
        }
        // Nothing ended yet: running when one of its first steps (no parents: the only ones
        // that can have started) is active or waiting for a retry.
        for i in unstarted {
            let (_, def) = match self.flow_definition(queue, &out[i].id).await {
                Ok(found) => found,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let first: Vec<&str> = def
                .iter()
                .filter(|s| s.after.is_empty())
                .map(|s| s.job_id.as_str())
                .collect();
            let states = self.broker.job_states(&keys, &first).await?;
            if states
                .iter()
                .any(|(s, _)| matches!(s.as_deref(), Some("active" | "retry")))
            {
                out[i].state = FlowState::Running;
            }
        }
        Ok(out)
    }

    /// Cancel a whole workflow: no step is released any more, steps not running are
    /// cancelled at once, running ones are stopped by their workers at their next lease
    /// renewal (their children are then cancelled too).
    pub async fn cancel_flow(&self, id: &str) -> Result<FlowCancelled> {
        let queue = self.flow_queue(id).await?;
        let keys = self.broker.keys(&queue);
        if !self.broker.mark_flow_cancelled(&keys, id).await? {
            return Err(Error::not_found(format!(
                "no workflow {id} in queue {queue}"
            )));
        }
        // After the mark no step can be released, so every step not ended is now waiting
        // (cancelled with its parent, or here), pending/retry (cancelled here) or active.
        let (hash, def) = self.flow_definition(&queue, id).await?;
        let mut out = FlowCancelled {
            id: id.to_owned(),
            cancelled: 0,
            cancelling: 0,
        };
        for i in parents_first(&def) {
            if hash.contains_key(&format!("e:{}", def[i].id)) {
                continue;
            }
            match self
                .broker
                .cancel(&keys, &self.retention, &def[i].job_id)
                .await
            {
                Ok(CancelOutcome::Cancelled) => out.cancelled += 1,
                Ok(CancelOutcome::Cancelling) => out.cancelling += 1,
                // Ended already (or cancelled with its parent just now), or deleted by hand.
                Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Start a workflow's failed steps (dead or cancelled) over, each waiting again for its
    /// parents that have not succeeded; steps that succeeded keep their ends and results.
    pub async fn retry_flow(&self, id: &str) -> Result<FlowRetried> {
        let queue = self.flow_queue(id).await?;
        let (_, def) = self.flow_definition(&queue, id).await?;
        let steps: Vec<(String, Vec<String>)> = parents_first(&def)
            .into_iter()
            .map(|i| (def[i].id.clone(), def[i].after.clone()))
            .collect();
        let retried = self
            .broker
            .retry_flow(&self.broker.keys(&queue), id, &steps)
            .await?;
        Ok(FlowRetried {
            id: id.to_owned(),
            retried,
        })
    }
}
