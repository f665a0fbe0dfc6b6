//! A `NewJob` from what Python gave: `enqueue`'s keyword arguments, or one dict of
//! `enqueue_bulk` (workflow steps reuse the same arguments, flow.rs).

use crate::convert::{self, opt_duration, to_json};
use crate::errors::invalid;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tickq::NewJob;

/// Everything `enqueue` accepts besides queue and kind, as Python gave it.
#[derive(Default)]
pub(crate) struct JobArgs<'py> {
    pub(crate) payload: Option<Bound<'py, PyAny>>,
    pub(crate) delay: Option<Bound<'py, PyAny>>,
    pub(crate) at: Option<Bound<'py, PyAny>>,
    pub(crate) id: Option<String>,
    pub(crate) unique_for: Option<Bound<'py, PyAny>>,
    pub(crate) unique_key: Option<String>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) timeout: Option<Bound<'py, PyAny>>,
    pub(crate) priority: Option<i32>,
    pub(crate) meta: Option<Bound<'py, PyAny>>,
    pub(crate) shard_key: Option<String>,
}

const JOB_KEYS: &str = "queue, kind, payload, delay, at, id, unique_for, unique_key, max_attempts, timeout, priority, meta, shard_key";

pub(crate) fn new_job(queue: &str, kind: &str, a: JobArgs<'_>) -> PyResult<NewJob> {
    let mut job = NewJob::new(queue, kind);
    if let Some(payload) = &a.payload {
        job = job.payload(to_json(payload)?);
    }
    match (
        a.delay.as_ref().filter(|d| !d.is_none()),
        a.at.as_ref().filter(|t| !t.is_none()),
    ) {
        (Some(_), Some(_)) => return Err(invalid("give delay or at, not both")),
        (Some(d), None) => job = job.delay(convert::duration("delay", d)?),
        (None, Some(t)) => job = job.at(convert::timestamp("at", t)?),
        (None, None) => {}
    }
    if let Some(id) = a.id {
        job = job.id(id);
    }
    if let Some(ttl) = opt_duration("unique_for", a.unique_for.as_ref())? {
        job = job.unique_for(ttl);
    }
    if let Some(key) = a.unique_key {
        if a.unique_for.is_none() {
            return Err(invalid(
                "unique_key needs unique_for (how long the job stays unique)",
            ));
        }
        job = job.unique_key(key);
    }
    if let Some(n) = a.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(t) = opt_duration("timeout", a.timeout.as_ref())? {
        job = job.timeout(t);
    }
    if let Some(p) = a.priority {
        job = job.priority(p);
    }
    if let Some(key) = a.shard_key {
        job = job.shard_key(key);
    }
    if let Some(meta) = a.meta.filter(|m| !m.is_none()) {
        let meta = meta
            .cast::<PyDict>()
            .map_err(|_| invalid("meta must be a dict of str to str"))?;
        for (k, v) in meta.iter() {
            job = job.meta(k.extract::<String>()?, v.extract::<String>()?);
        }
    }
    Ok(job)
}

/// One job of `enqueue_bulk`: a dict with the keyword arguments of `enqueue`.
pub(crate) fn new_job_from_dict(item: &Bound<'_, PyAny>) -> PyResult<NewJob> {
    let d = item
        .cast::<PyDict>()
        .map_err(|_| invalid(format!("each bulk job must be a dict with keys {JOB_KEYS}")))?;
    let mut queue = None;
    let mut kind = None;
    let mut a = JobArgs::default();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "queue" => queue = Some(v.extract::<String>()?),
            "kind" => kind = Some(v.extract::<String>()?),
            "payload" => a.payload = Some(v),
            "delay" => a.delay = Some(v),
            "at" => a.at = Some(v),
            "id" => a.id = v.extract()?,
            "unique_for" => a.unique_for = Some(v),
            "unique_key" => a.unique_key = v.extract()?,
            "max_attempts" => a.max_attempts = v.extract()?,
            "timeout" => a.timeout = Some(v),
            "priority" => a.priority = v.extract()?,
            "meta" => a.meta = Some(v),
            "shard_key" => a.shard_key = v.extract()?,
            other => {
                return Err(invalid(format!(
                    "unknown bulk job key {other:?}; known keys: {JOB_KEYS}"
                )));
            }
        }
    }
    let queue = queue.ok_or_else(|| invalid("a bulk job needs a queue"))?;
    let kind = kind.ok_or_else(|| invalid("a bulk job needs a kind"))?;
    new_job(&queue, &kind, a)
}
