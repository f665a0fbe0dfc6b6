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
    /// Its home queue: the queue of its hash and its place in the list (its steps may be in
    /// other queues too: [`FlowStepView::queue`]).
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
    /// The queue its job is in.
    pub queue: String,
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
    /// The home queue of workflow `id` (the queue that holds its hash and definition).
    async fn flow_queue(&self, id: &str) -> Result<String> {
        validate_flow_id(id)?;
        // One call per queue, not a pipeline: on a Cluster the queues are in different slots.
        for queue in self.queues().await? {
            match self.broker.flow_home(&self.broker.keys(&queue), id).await? {
                Some(None) => return Ok(queue),
                // A part: its home is named. (A part whose home was never created, a submit
                // that crashed, is not a workflow yet: submit it again with the same id.)
                Some(Some(home))
                    if self.broker.flow_home(&self.broker.keys(&home), id).await? == Some(None) =>
                {
                    return Ok(home);
                }
                Some(Some(_)) | None => {}
            }
        }
        Err(Error::not_found(format!(
            "no workflow {id} (it never existed, or it ended longer ago than its retention)"
        )))
    }

    /// The queues of a workflow: its home first, then every other queue with a step.
    fn flow_queues(home: &str, def: &[StepDef]) -> Vec<String> {
        let mut queues = vec![home.to_owned()];
        for step in def {
            if let Some(q) = &step.queue
                && !queues.contains(q)
            {
                queues.push(q.clone());
            }
        }
        queues
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
        // Each step's job in its own queue: one round trip per queue.
        let mut jobs = vec![(None, None); def.len()];
        for q in Self::flow_queues(&queue, &def) {
            let at: Vec<usize> = (0..def.len())
                .filter(|&i| def[i].queue.as_deref().unwrap_or(&queue) == q)
                .collect();
            if at.is_empty() {
                continue;
            }
            let ids: Vec<&str> = at.iter().map(|&i| def[i].job_id.as_str()).collect();
            let states = self.broker.job_states(&self.broker.keys(&q), &ids).await?;
            for (i, state) in at.into_iter().zip(states) {
                jobs[i] = state;
            }
        }
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
                    queue: step.queue.unwrap_or_else(|| queue.clone()),
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
            // Its first steps by queue: one round trip per queue (a slot each on a Cluster).
            let mut states = Vec::new();
            for q in Self::flow_queues(queue, &def) {
                let first: Vec<&str> = def
                    .iter()
                    .filter(|s| s.after.is_empty() && s.queue.as_deref().unwrap_or(queue) == q)
                    .map(|s| s.job_id.as_str())
                    .collect();
                if !first.is_empty() {
                    states.extend(
                        self.broker
                            .job_states(&self.broker.keys(&q), &first)
                            .await?,
                    );
                }
            }
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
        let (hash, def) = self.flow_definition(&queue, id).await?;
        let queues = Self::flow_queues(&queue, &def);
        // Every other queue's part too (each mark is idempotent: a cancel repeated after a
        // crash here marks the rest).
        for q in &queues[1..] {
            self.broker
                .mark_flow_cancelled(&self.broker.keys(q), id)
                .await?;
        }
        // After the marks no step can be released, so every step not ended is now waiting
        // (cancelled with its parent, or here), pending/retry (cancelled here) or active.
        let mut out = FlowCancelled {
            id: id.to_owned(),
            cancelled: 0,
            cancelling: 0,
        };
        for i in parents_first(&def) {
            if hash.contains_key(&format!("e:{}", def[i].id)) {
                continue;
            }
            let step_keys = self.broker.keys(def[i].queue.as_deref().unwrap_or(&queue));
            match self
                .broker
                .cancel(&step_keys, &self.retention, &def[i].job_id)
                .await
            {
                Ok(CancelOutcome::Cancelled) => out.cancelled += 1,
                Ok(CancelOutcome::Cancelling) => out.cancelling += 1,
                // Ended already (or cancelled with its parent just now), or deleted by hand.
                Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.relay_flow(&queues).await;
        Ok(out)
    }

    /// Hand on at once what a change to a workflow wrote in its queues' outboxes (the
    /// workers' relays would within a second; docs/workflows.md).
    async fn relay_flow(&self, queues: &[String]) {
        if queues.len() < 2 {
            return;
        }
        for q in queues {
            if let Err(e) = self.broker.relay_flows(&self.broker.keys(q)).await {
                tracing::debug!(queue = %q, error = %e, "relaying a workflow change failed; the workers' relays will");
            }
        }
    }

    /// Start a workflow's failed steps (dead or cancelled) over, each waiting again for its
    /// parents that have not succeeded; steps that succeeded keep their ends and results.
    pub async fn retry_flow(&self, id: &str) -> Result<FlowRetried> {
        let queue = self.flow_queue(id).await?;
        let (hash, def) = self.flow_definition(&queue, id).await?;
        let queues = Self::flow_queues(&queue, &def);
        // The ends being retried, with their versions as the home holds them (a step of the
        // home: its round `g:`; another queue's: the version of its end `v:`), so that a
        // queue that already has a newer end of such a step keeps it (lua/flow_retry.lua).
        let version = |s: &StepDef| -> Option<u64> {
            let ended = hash.get(&format!("e:{}", s.id))?;
            if ended != "dead" && ended != "cancelled" {
                return None;
            }
            let num = |f: String| hash.get(&f).and_then(|v| v.parse::<u64>().ok());
            Some(match s.queue {
                None => 2 * num(format!("g:{}", s.id)).unwrap_or(0) + 1,
                Some(_) => num(format!("v:{}", s.id)).unwrap_or(1),
            })
        };
        let order = parents_first(&def);
        let mut retried = 0;
        // The other queues first, the home last: the home's own restarts are what its
        // relays tell the others.
        for q in queues.iter().skip(1).chain(queues.first()) {
            let steps: Vec<(String, Vec<String>, bool, Option<u64>)> = order
                .iter()
                .map(|&i| {
                    let s = &def[i];
                    let here = s.queue.as_deref().unwrap_or(&queue) == q.as_str();
                    (s.id.clone(), s.after.clone(), here, version(s))
                })
                .collect();
            retried += match self
                .broker
                .retry_flow(&self.broker.keys(q), id, &steps)
                .await
            {
                Ok(n) => n,
                // A part whose steps all ended longer ago than the retention: nothing there
                // to start over.
                Err(e) if e.kind() == ErrorKind::NotFound && q != &queue => 0,
                Err(e) => return Err(e),
            };
        }
        self.relay_flow(&queues).await;
        Ok(FlowRetried {
            id: id.to_owned(),
            retried,
        })
    }
}
