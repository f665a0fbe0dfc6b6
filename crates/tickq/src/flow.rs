//! Workflows: a DAG of steps, each an ordinary job that starts once its parents have ended
//! (docs/workflows.md).
//!
//! ```
//! use tickq::{NewJob, ParentFailure, Step, Workflow};
//!
//! let flow = Workflow::new("default", "nightly-report")
//!     .step(Step::new("part1", NewJob::new("default", "export")))
//!     .step(Step::new("part2", NewJob::new("default", "export")))
//!     .step(
//!         Step::new("report", NewJob::new("default", "report"))
//!             .after(["part1", "part2"])
//!             .on_parent_failure(ParentFailure::Run),
//!     );
//! assert!(flow.validate().is_ok());
//! ```

use crate::job::{Due, NewJob, validate_queue_name};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Most steps in one workflow: it is created by one script call, which holds Redis meanwhile.
pub const MAX_FLOW_STEPS: usize = 10_000;
const MAX_ID_LEN: usize = 64;

/// What a step does when one of its parents fails (dies or is cancelled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum ParentFailure {
    /// Cancel the step at once, with the parent named as the reason; its own `cancel`
    /// children follow, transitively. The default.
    #[default]
    Cancel,
    /// Run the step anyway once all its parents have ended.
    Run,
    /// End the step at once as skipped, which counts as a success for its own children.
    Skip,
    /// Run the step only when some parent failed: it waits until all its parents have ended
    /// (like [`ParentFailure::Run`]), then runs if at least one of them died or was
    /// cancelled, and otherwise ends as skipped. What a [`Batch`]'s `on_failure` step gets.
    #[serde(rename = "only_if_failed")]
    OnlyIfFailed,
}

impl ParentFailure {
    /// The policy's name in Redis, TOML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ParentFailure::Cancel => "cancel",
            ParentFailure::Run => "run",
            ParentFailure::Skip => "skip",
            ParentFailure::OnlyIfFailed => "only_if_failed",
        }
    }
}

impl std::str::FromStr for ParentFailure {
    type Err = Error;

    fn from_str(s: &str) -> Result<ParentFailure> {
        match s {
            "cancel" => Ok(ParentFailure::Cancel),
            "run" => Ok(ParentFailure::Run),
            "skip" => Ok(ParentFailure::Skip),
            "only_if_failed" => Ok(ParentFailure::OnlyIfFailed),
            _ => Err(Error::invalid(format!(
                "unknown on_parent_failure {s:?}; expected cancel, run, skip or only_if_failed"
            ))),
        }
    }
}

/// One step of a [`Workflow`]: a job, the steps it runs after, and its failure policy.
#[derive(Debug, Clone)]
pub struct Step {
    pub(crate) id: String,
    pub(crate) job: NewJob,
    pub(crate) after: Vec<String>,
    pub(crate) on_parent_failure: ParentFailure,
}

impl Step {
    /// A step named `id` (letters, digits, `-`, `_`, `.`; unique in its workflow) that runs
    /// `job`. The job's id is set by the workflow (`flow:<workflow id>:<step id>`); it may not
    /// have a delay or a unique key. Default: no parents, [`ParentFailure::Cancel`].
    pub fn new(id: impl Into<String>, job: NewJob) -> Step {
        Step {
            id: id.into(),
            job,
            after: Vec::new(),
            on_parent_failure: ParentFailure::Cancel,
        }
    }

    /// Run after these steps have ended. Default: none (the step starts at once).
    pub fn after<I, S>(mut self, parents: I) -> Step
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.after.extend(parents.into_iter().map(Into::into));
        self
    }

    /// What a failed parent does to this step. Default: [`ParentFailure::Cancel`].
    pub fn on_parent_failure(mut self, policy: ParentFailure) -> Step {
        self.on_parent_failure = policy;
        self
    }
}

/// A batch of steps with named callbacks, each an ordinary step of the workflow that runs
/// after every step of the batch has ended:
///
/// | callback | runs when | otherwise |
/// | --- | --- | --- |
/// | `on_complete` | all ended, however | (always runs; policy [`ParentFailure::Run`]) |
/// | `on_success` | all completed or were skipped | cancelled with the failed step as reason ([`ParentFailure::Cancel`]) |
/// | `on_failure` | all ended and at least one died or was cancelled | skipped ([`ParentFailure::OnlyIfFailed`]) |
///
/// A callback step is named by its step id, has no `after` and no policy of its own (the
/// batch sets both), and is the callback of one batch only. Like every step it starts at most
/// once, never before the whole batch has ended.
///
/// ```
/// use tickq::{Batch, NewJob, Step, Workflow};
///
/// let job = |kind: &str| NewJob::new("default", kind);
/// let flow = Workflow::new("default", "parts")
///     .step(Step::new("part1", job("export")))
///     .step(Step::new("part2", job("export")))
///     .step(Step::new("report", job("report")))
///     .step(Step::new("alert", job("alert")))
///     .batch(Batch::new(["part1", "part2"]).on_success("report").on_failure("alert"));
/// assert!(flow.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The batch's steps (step ids).
    pub steps: Vec<String>,
    /// The step that runs once every step of the batch ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<String>,
    /// The step that runs once every step of the batch succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// The step that runs once every step of the batch ended and some failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
}

impl Batch {
    /// A batch of these steps (step ids), with no callback yet.
    pub fn new<I, S>(steps: I) -> Batch
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Batch {
            steps: steps.into_iter().map(Into::into).collect(),
            ..Batch::default()
        }
    }

    /// Run step `step` once every step of the batch has ended. Default: none.
    pub fn on_complete(mut self, step: impl Into<String>) -> Batch {
        self.on_complete = Some(step.into());
        self
    }

    /// Run step `step` once every step of the batch has succeeded (completed or skipped);
    /// when one fails it is cancelled instead, with that step as the reason. Default: none.
    pub fn on_success(mut self, step: impl Into<String>) -> Batch {
        self.on_success = Some(step.into());
        self
    }

    /// Run step `step` once every step of the batch has ended and at least one died or was
    /// cancelled; when all succeeded it ends as skipped. Default: none.
    pub fn on_failure(mut self, step: impl Into<String>) -> Batch {
        self.on_failure = Some(step.into());
        self
    }

    /// The callbacks that are set, with the policy each gets.
    fn callbacks(&self) -> impl Iterator<Item = (&'static str, &str, ParentFailure)> {
        [
            ("on_complete", &self.on_complete, ParentFailure::Run),
            ("on_success", &self.on_success, ParentFailure::Cancel),
            ("on_failure", &self.on_failure, ParentFailure::OnlyIfFailed),
        ]
        .into_iter()
        .filter_map(|(name, step, policy)| step.as_deref().map(|s| (name, s, policy)))
    }
}

/// A DAG of [`Step`]s, in one queue or several, submitted all or nothing with [`crate::Client::submit_flow`].
#[derive(Debug, Clone)]
pub struct Workflow {
    pub(crate) id: Option<String>,
    pub(crate) queue: String,
    pub(crate) name: String,
    pub(crate) steps: Vec<Step>,
    pub(crate) batches: Vec<Batch>,
}

/// The answer to submitting a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowSubmitted {
    /// The workflow id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// `false` when a workflow with this id was already there (nothing was created).
    pub created: bool,
}

/// One step of a workflow's definition as stored with it (the `def` field) and shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StepDef {
    pub(crate) id: String,
    pub(crate) job_id: String,
    pub(crate) kind: String,
    /// Its queue when not the workflow's (docs/workflows.md, "Steps in other queues").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) queue: Option<String>,
    pub(crate) after: Vec<String>,
    pub(crate) on_parent_failure: ParentFailure,
}

impl Workflow {
    /// An empty workflow named `name` (free text, shown in views) whose home is `queue`: its
    /// hash, its place in the workflow list and the steps of that queue. Steps may be in other
    /// queues (docs/workflows.md, "Steps in other queues"). Default id: a fresh UUID v7.
    pub fn new(queue: impl Into<String>, name: impl Into<String>) -> Workflow {
        Workflow {
            id: None,
            queue: queue.into(),
            name: name.into(),
            steps: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// Use this id (letters, digits, `-`, `_`, `.`, at most 64): submitting a workflow whose id
    /// exists creates nothing. Default: a fresh UUID v7.
    pub fn id(mut self, id: impl Into<String>) -> Workflow {
        self.id = Some(id.into());
        self
    }

    /// Add a step.
    pub fn step(mut self, step: Step) -> Workflow {
        self.steps.push(step);
        self
    }

    /// Add a batch with its callbacks ([`Batch`]). Its steps and callback steps are added
    /// with [`Workflow::step`], before or after this call.
    pub fn batch(mut self, batch: Batch) -> Workflow {
        self.batches.push(batch);
        self
    }

    /// Check everything that can be checked without Redis: names, that every `after` and every batch names a step, no cycle, the size limit, and each step's
    /// job.
    pub fn validate(&self) -> Result<()> {
        self.resolved()?.topological_order().map(|_| ())
    }

    /// The workflow with each batch's callbacks turned into edges and policies (a callback
    /// runs after the batch's steps with the callback's policy), and no batches left.
    pub(crate) fn resolved(&self) -> Result<std::borrow::Cow<'_, Workflow>> {
        if self.batches.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let mut flow = self.clone();
        let index: HashMap<String, usize> = flow
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        for (n, batch) in std::mem::take(&mut flow.batches).iter().enumerate() {
            let at = |what: String| Error::invalid(format!("batch {}: {what}", n + 1));
            if batch.steps.is_empty() {
                return Err(at("it has no steps".into()));
            }
            for s in &batch.steps {
                if !index.contains_key(s) {
                    return Err(at(format!("{s:?} is not a step of this workflow")));
                }
            }
            for (name, callback, policy) in batch.callbacks() {
                let &i = index.get(callback).ok_or_else(|| {
                    at(format!(
                        "{name} names {callback:?}, which is not a step of this workflow"
                    ))
                })?;
                if batch.steps.iter().any(|s| s == callback) {
                    return Err(at(format!(
                        "{name} names {callback:?}, a step of the batch itself"
                    )));
                }
                let step = &mut flow.steps[i];
                if !step.after.is_empty() || step.on_parent_failure != ParentFailure::Cancel {
                    return Err(at(format!(
                        "{name} names {callback:?}, which already has after or \
                         on_parent_failure (or is another callback); a callback step takes \
                         both from its batch"
                    )));
                }
                step.after = batch.steps.clone();
                step.on_parent_failure = policy;
            }
        }
        Ok(std::borrow::Cow::Owned(flow))
    }

    pub(crate) fn topological_order(&self) -> Result<Vec<usize>> {
        validate_queue_name(&self.queue)?;
        if let Some(id) = &self.id {
            validate_flow_name("workflow id", id)?;
        }
        if self.steps.is_empty() {
            return Err(Error::invalid("a workflow needs at least one step"));
        }
        if self.steps.len() > MAX_FLOW_STEPS {
            return Err(Error::invalid(format!(
                "a workflow has at most {MAX_FLOW_STEPS} steps; this one has {}",
                self.steps.len()
            )));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            validate_flow_name("step id", &step.id)?;
            if index.insert(&step.id, i).is_some() {
                return Err(Error::invalid(format!(
                    "step id {:?} is used twice",
                    step.id
                )));
            }
            let job = &step.job;
            if job.id.is_some() {
                return Err(Error::invalid(format!(
                    "step {:?} sets a job id; a step's job id is flow:<workflow id>:<step id>",
                    step.id
                )));
            }
            if job.unique.is_some() {
                return Err(Error::invalid(format!(
                    "step {:?} has a unique key; workflow steps cannot (the workflow id already \
                     makes a repeated submit create nothing)",
                    step.id
                )));
            }
            if job.due != Due::Now {
                return Err(Error::invalid(format!(
                    "step {:?} has a delay; a workflow step starts when its parents have ended",
                    step.id
                )));
            }
            job.validate()?;
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.steps.len()];
        let mut parents_left: Vec<usize> = vec![0; self.steps.len()];
        for (i, step) in self.steps.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for parent in &step.after {
                let &p = index.get(parent.as_str()).ok_or_else(|| {
                    Error::invalid(format!(
                        "step {:?} runs after {parent:?}, which is not a step of this workflow",
                        step.id
                    ))
                })?;
                if p == i {
                    return Err(Error::invalid(format!(
                        "step {:?} runs after itself",
                        step.id
                    )));
                }
                if !seen.insert(p) {
                    return Err(Error::invalid(format!(
                        "step {:?} names {parent:?} twice in after",
                        step.id
                    )));
                }
                children[p].push(i);
                parents_left[i] += 1;
            }
        }
        for step in &self.steps {
            if step.after.is_empty() && step.on_parent_failure == ParentFailure::OnlyIfFailed {
                return Err(Error::invalid(format!(
                    "step {:?} runs only if a parent failed, but it has no parents",
                    step.id
                )));
            }
        }
        // Kahn's algorithm: what is left when no step is free any more is on a cycle.
        let mut order: Vec<usize> = (0..self.steps.len())
            .filter(|&i| parents_left[i] == 0)
            .collect();
        let mut next = 0;
        while next < order.len() {
            for &c in &children[order[next]] {
                parents_left[c] -= 1;
                if parents_left[c] == 0 {
                    order.push(c);
                }
            }
            next += 1;
        }
        if order.len() < self.steps.len() {
            let mut stuck: Vec<&str> = (0..self.steps.len())
                .filter(|&i| parents_left[i] > 0)
                .map(|i| self.steps[i].id.as_str())
                .collect();
            stuck.sort_unstable();
            return Err(Error::invalid(format!(
                "the workflow has a cycle through the steps {}",
                stuck.join(", ")
            )));
        }
        Ok(order)
    }

    /// The definition stored with the workflow, in the order the steps were given.
    pub(crate) fn definition(&self, id: &str) -> Vec<StepDef> {
        self.steps
            .iter()
            .map(|s| StepDef {
                id: s.id.clone(),
                job_id: step_job_id(id, &s.id),
                kind: s.job.kind.clone(),
                queue: (s.job.queue != self.queue).then(|| s.job.queue.clone()),
                after: s.after.clone(),
                on_parent_failure: s.on_parent_failure,
            })
            .collect()
    }

    /// Each step's children (step ids), by step index.
    pub(crate) fn children(&self) -> Vec<Vec<&str>> {
        let index: BTreeMap<&str, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut children = vec![Vec::new(); self.steps.len()];
        for step in &self.steps {
            for parent in &step.after {
                children[index[parent.as_str()]].push(step.id.as_str());
            }
        }
        children
    }
}

/// How every step's job id starts.
pub(crate) const FLOW_JOB_PREFIX: &str = "flow:";

/// The job id of a workflow's step.
pub fn step_job_id(flow_id: &str, step: &str) -> String {
    format!("{FLOW_JOB_PREFIX}{flow_id}:{step}")
}

fn validate_flow_name(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {what} {s:?}: use 1 to {MAX_ID_LEN} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Check a workflow id (as [`Workflow::id`] takes it).
pub fn validate_flow_id(id: &str) -> Result<()> {
    validate_flow_name("workflow id", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> NewJob {
        NewJob::new("q", "k")
    }

    fn err(flow: Workflow) -> String {
        flow.validate().unwrap_err().to_string()
    }

    #[test]
    fn validation_names_the_problem() {
        let f = || Workflow::new("q", "n");
        assert!(err(f()).contains("at least one step"));
        assert!(err(f().step(Step::new("a b", job()))).contains("step id"));
        assert!(err(f().id("x:y").step(Step::new("a", job()))).contains("workflow id"));
        assert!(
            err(f().step(Step::new("a", job())).step(Step::new("a", job()))).contains("used twice")
        );
        assert!(err(f().step(Step::new("a", job()).after(["b"]))).contains("not a step"));
        assert!(err(f().step(Step::new("a", job()).after(["a"]))).contains("itself"));
        assert!(
            err(f()
                .step(Step::new("a", job()))
                .step(Step::new("b", job()).after(["a", "a"])))
            .contains("twice")
        );
        assert!(
            err(f().step(Step::new("a", NewJob::new("bad queue", "k")))).contains("queue name")
        );
        assert!(err(f().step(Step::new("a", job().id("x")))).contains("job id"));
        assert!(
            err(f().step(Step::new(
                "a",
                job().unique_for(std::time::Duration::from_secs(1))
            )))
            .contains("unique")
        );
        assert!(
            err(f().step(Step::new(
                "a",
                job().delay(std::time::Duration::from_secs(1))
            )))
            .contains("delay")
        );
    }

    #[test]
    fn batches_become_edges_and_policies() {
        let flow = Workflow::new("q", "n")
            .batch(Batch::new(["a", "b"]).on_complete("c").on_failure("f"))
            .step(Step::new("a", job()))
            .step(Step::new("b", job()))
            .step(Step::new("c", job()))
            .step(Step::new("f", job()));
        let resolved = flow.resolved().unwrap();
        let policies: Vec<(&str, &[String], ParentFailure)> = resolved
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.after.as_slice(), s.on_parent_failure))
            .collect();
        let ab = ["a".to_owned(), "b".to_owned()];
        assert_eq!(policies[2], ("c", &ab[..], ParentFailure::Run));
        assert_eq!(policies[3], ("f", &ab[..], ParentFailure::OnlyIfFailed));
        assert!(resolved.batches.is_empty());

        let f = || {
            Workflow::new("q", "n")
                .step(Step::new("a", job()))
                .step(Step::new("c", job()))
        };
        let bad = |b: Batch| err(f().batch(b));
        assert!(bad(Batch::new(Vec::<String>::new())).contains("no steps"));
        assert!(bad(Batch::new(["zz"]).on_success("c")).contains("\"zz\" is not a step"));
        assert!(bad(Batch::new(["a"]).on_success("zz")).contains("on_success names \"zz\""));
        assert!(bad(Batch::new(["a"]).on_failure("a")).contains("of the batch itself"));
        assert!(
            bad(Batch::new(["a"]).on_success("c").on_failure("c")).contains("another callback")
        );
        assert!(
            err(f()
                .step(Step::new("x", job()).after(["a"]))
                .batch(Batch::new(["a"]).on_complete("x")))
            .contains("already has after")
        );
        assert!(
            err(f().step(Step::new("x", job()).on_parent_failure(ParentFailure::OnlyIfFailed)))
                .contains("no parents")
        );
    }

    #[test]
    fn a_cycle_is_refused_and_named() {
        let flow = Workflow::new("q", "n")
            .step(Step::new("root", job()))
            .step(Step::new("a", job()).after(["root", "c"]))
            .step(Step::new("b", job()).after(["a"]))
            .step(Step::new("c", job()).after(["b"]));
        assert!(err(flow).contains("cycle through the steps a, b, c"));
    }

    #[test]
    fn parents_come_before_children() {
        let flow = Workflow::new("q", "n")
            .step(Step::new("d", job()).after(["b", "c"]))
            .step(Step::new("c", job()).after(["a"]))
            .step(Step::new("b", job()).after(["a"]))
            .step(Step::new("a", job()));
        let order: Vec<&str> = flow
            .topological_order()
            .unwrap()
            .into_iter()
            .map(|i| flow.steps[i].id.as_str())
            .collect();
        let pos = |s: &str| order.iter().position(|o| *o == s).unwrap();
        assert!(pos("a") < pos("b") && pos("a") < pos("c"));
        assert!(pos("b") < pos("d") && pos("c") < pos("d"));
    }

    #[test]
    fn the_size_limit_holds() {
        let mut flow = Workflow::new("q", "n");
        for i in 0..=MAX_FLOW_STEPS {
            flow = flow.step(Step::new(format!("s{i}"), job()));
        }
        assert!(err(flow).contains("at most"));
    }
}
