//! Workflows from Python: step dicts and batch dicts become a `tickq::Workflow`
//! (docs/workflows.md; the same fields as a `tickq flow run` file).

use crate::errors::invalid;
use crate::new_job::{JobArgs, new_job};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tickq::{Batch, ParentFailure, Step, Workflow};

const STEP_KEYS: &str =
    "id, kind, payload, after, on_parent_failure, queue, max_attempts, timeout, priority, meta";
const BATCH_KEYS: &str = "steps, on_complete, on_success, on_failure";

/// A workflow named `name` in `queue` from `steps` (an iterable of step dicts) and `batches`
/// (an iterable of batch dicts, or None); `id` None makes a fresh one.
pub(crate) fn workflow(
    queue: &str,
    name: &str,
    id: Option<String>,
    steps: &Bound<'_, PyAny>,
    batches: Option<&Bound<'_, PyAny>>,
) -> PyResult<Workflow> {
    let mut flow = Workflow::new(queue, name);
    if let Some(id) = id {
        flow = flow.id(id);
    }
    for item in steps.try_iter()? {
        flow = flow.step(step(&item?, queue)?);
    }
    if let Some(batches) = batches.filter(|b| !b.is_none()) {
        for item in batches.try_iter()? {
            flow = flow.batch(batch(&item?)?);
        }
    }
    Ok(flow)
}

/// `"a"` or `["a", "b"]`.
fn names(what: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if let Ok(one) = v.extract::<String>() {
        return Ok(vec![one]);
    }
    v.extract::<Vec<String>>()
        .map_err(|_| invalid(format!("{what} must be a step id or a list of step ids")))
}

fn step(item: &Bound<'_, PyAny>, flow_queue: &str) -> PyResult<Step> {
    let d = item
        .cast::<PyDict>()
        .map_err(|_| invalid(format!("each step must be a dict with keys {STEP_KEYS}")))?;
    let (mut id, mut kind, mut queue) = (None, None, None);
    let mut after = Vec::new();
    let mut policy = ParentFailure::default();
    let mut a = JobArgs::default();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "id" => id = Some(v.extract::<String>()?),
            "kind" => kind = Some(v.extract::<String>()?),
            "queue" => queue = Some(v.extract::<String>()?),
            "after" => after = names("after", &v)?,
            "on_parent_failure" => {
                policy = v
                    .extract::<String>()?
                    .parse()
                    .map_err(|e: tickq::Error| invalid(e.to_string()))?
            }
            "payload" => a.payload = Some(v),
            "max_attempts" => a.max_attempts = v.extract()?,
            "timeout" => a.timeout = Some(v),
            "priority" => a.priority = v.extract()?,
            "meta" => a.meta = Some(v),
            other => {
                return Err(invalid(format!(
                    "unknown step key {other:?}; known keys: {STEP_KEYS}"
                )));
            }
        }
    }
    let id = id.ok_or_else(|| invalid("a step needs an id"))?;
    let kind = kind.ok_or_else(|| invalid(format!("step {id:?} needs a kind")))?;
    let job = new_job(queue.as_deref().unwrap_or(flow_queue), &kind, a)?;
    Ok(Step::new(id, job).after(after).on_parent_failure(policy))
}

fn batch(item: &Bound<'_, PyAny>) -> PyResult<Batch> {
    let d = item
        .cast::<PyDict>()
        .map_err(|_| invalid(format!("each batch must be a dict with keys {BATCH_KEYS}")))?;
    let mut steps = None;
    let mut callbacks = Vec::new();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "steps" => steps = Some(names("steps", &v)?),
            "on_complete" | "on_success" | "on_failure" => {
                callbacks.push((key, v.extract::<String>()?));
            }
            other => {
                return Err(invalid(format!(
                    "unknown batch key {other:?}; known keys: {BATCH_KEYS}"
                )));
            }
        }
    }
    let mut batch = Batch::new(steps.ok_or_else(|| invalid("a batch needs its steps"))?);
    for (when, step) in callbacks {
        batch = match when.as_str() {
            "on_complete" => batch.on_complete(step),
            "on_success" => batch.on_success(step),
            _ => batch.on_failure(step),
        };
    }
    Ok(batch)
}
