//! `Client`: the producer and admin calls, each blocking or awaitable (`aio`).

use crate::bridge::{self, Convert};
use crate::convert::{self, from_json, to_json};
use crate::enqueued::{PartialEnqueue, enqueued, py_bool};
use crate::errors::invalid;
use crate::lock::Lock;
use crate::new_job::{JobArgs, new_job, new_job_from_dict};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::time::Duration;
use tickq::{Catchup, Overlap, ScheduleSpec, Task};

/// A connection to tickq on one Redis. Cheap to share between threads and tasks.
#[pyclass(module = "tickq._tickq", frozen)]
pub struct Client {
    pub(crate) inner: tickq::Client,
    /// The admin calls: reads, actions by id, schedules.
    inspector: tickq::Inspector,
    url: String,
}

fn boxed<T, F>(f: F) -> Convert<T>
where
    F: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    Box::new(f)
}

fn none<T>() -> Convert<T> {
    boxed(|py, _| Ok(py.None()))
}

fn string(py: Python<'_>, s: String) -> PyResult<Py<PyAny>> {
    Ok(PyString::new(py, &s).into_any().unbind())
}

/// A job as stored, with its state and history.
#[pyclass(module = "tickq._tickq", frozen, get_all)]
pub struct JobInfo {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: Py<PyAny>,
    pub state: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: i32,
    pub fence: u64,
    /// Per-attempt time limit in seconds, if the job sets one.
    pub timeout: Option<f64>,
    pub created_at: Py<PyAny>,
    pub due_at: Py<PyAny>,
    pub started_at: Py<PyAny>,
    pub finished_at: Py<PyAny>,
    pub lease_until: Py<PyAny>,
    pub worker: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub cancel_requested: bool,
    /// `{"value": 0.0..1.0, "message": str}` as the handler last reported it, or None.
    pub progress: Py<PyAny>,
    pub meta: Py<PyAny>,
    pub corrupt: Option<String>,
}

#[pymethods]
impl JobInfo {
    fn __repr__(&self) -> String {
        format!(
            "JobInfo(id={:?}, queue={:?}, kind={:?}, state={:?}, attempt={})",
            self.id, self.queue, self.kind, self.state, self.attempt
        )
    }
}

fn job_info(py: Python<'_>, j: tickq::JobInfo) -> PyResult<Py<PyAny>> {
    let meta = PyDict::new(py);
    for (k, v) in &j.meta {
        meta.set_item(k, v)?;
    }
    let info = JobInfo {
        payload: from_json(py, &j.payload)?.unbind(),
        state: j.state.to_string(),
        attempt: j.attempt,
        max_attempts: j.max_attempts,
        priority: j.priority,
        fence: j.fence,
        timeout: j.timeout_ms.map(|ms| ms as f64 / 1000.0),
        created_at: convert::datetime(py, j.created_at)?,
        due_at: convert::datetime(py, j.due_at)?,
        started_at: convert::datetime(py, j.started_at)?,
        finished_at: convert::datetime(py, j.finished_at)?,
        lease_until: convert::datetime(py, j.lease_until)?,
        worker: j.worker,
        last_error: j.last_error,
        result: j.result,
        cancel_requested: j.cancel_requested,
        progress: match &j.progress {
            Some(p) => document(py, p)?,
            None => py.None(),
        },
        meta: meta.into_any().unbind(),
        corrupt: j.corrupt,
        id: j.id,
        queue: j.queue,
        kind: j.kind,
    };
    Ok(Py::new(py, info)?.into_any())
}

/// A schedule as stored: its spec (in the config file's shape) and firing state.
#[pyclass(module = "tickq._tickq", frozen, get_all)]
pub struct ScheduleInfo {
    pub name: String,
    pub spec: Py<PyAny>,
    pub version: u64,
    pub next_at: Py<PyAny>,
    pub watermark: Py<PyAny>,
    pub last_fired_at: Py<PyAny>,
    pub fired: u64,
    pub skipped: u64,
    pub paused: bool,
}

#[pymethods]
impl ScheduleInfo {
    fn __repr__(&self) -> String {
        format!(
            "ScheduleInfo(name={:?}, version={}, fired={}, paused={})",
            self.name,
            self.version,
            self.fired,
            py_bool(self.paused)
        )
    }
}

const SCHEDULE_KEYS: &str = "name, schedule, queue, timezone, overlap, catchup, tasks";
const TASK_KEYS: &str = "kind, payload, cmd, env, cwd, stdin, max_attempts, timeout, priority";

/// A schedule from the dict form of a config file's `[[cron]]` table.
fn schedule_spec(spec: &Bound<'_, PyAny>) -> PyResult<ScheduleSpec> {
    let d = spec
        .cast::<PyDict>()
        .map_err(|_| invalid(format!("a schedule is a dict with keys {SCHEDULE_KEYS}")))?;
    let mut name = None;
    let mut cron = None;
    let mut queue = "default".to_owned();
    let mut timezone = "UTC".to_owned();
    let mut overlap = Overlap::default();
    let mut catchup = Catchup::default();
    let mut tasks = Vec::new();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "name" => name = Some(v.extract::<String>()?),
            "schedule" => cron = Some(v.extract::<String>()?.trim().to_owned()),
            "queue" => queue = v.extract()?,
            "timezone" => timezone = v.extract()?,
            "overlap" => overlap = enum_value(&v, "overlap", "allow, forbid or replace")?,
            "catchup" => catchup = enum_value(&v, "catchup", "skip, latest or all")?,
            "tasks" => {
                for (i, t) in v.try_iter()?.enumerate() {
                    tasks.push(task(&t?).map_err(|e| invalid(format!("task {}: {e}", i + 1)))?);
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown schedule key {other:?}; known keys: {SCHEDULE_KEYS}"
                )));
            }
        }
    }
    let name = name.ok_or_else(|| invalid("a schedule needs a name"))?;
    let cron =
        cron.ok_or_else(|| invalid(format!("schedule {name}: needs schedule = \"CRON\"")))?;
    let mut out = ScheduleSpec::new(name, queue, cron)
        .timezone(timezone)
        .overlap(overlap)
        .catchup(catchup);
    for t in tasks {
        out = out.task(t);
    }
    Ok(out)
}

fn enum_value<T: serde::de::DeserializeOwned>(
    v: &Bound<'_, PyAny>,
    what: &str,
    choices: &str,
) -> PyResult<T> {
    let s: String = v.extract()?;
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|_| invalid(format!("invalid {what} {s:?}: use {choices}")))
}

/// One task: `{"kind": K, "payload": P}`, or an exec task written like the config file:
/// `{"kind": "exec", "cmd": [...], "env": {...}, "cwd": "...", "stdin": "..."}`.
fn task(t: &Bound<'_, PyAny>) -> PyResult<Task> {
    let d = t
        .cast::<PyDict>()
        .map_err(|_| invalid(format!("a task is a dict with keys {TASK_KEYS}")))?;
    let mut kind = None;
    let mut payload = None;
    let mut exec = serde_json::Map::new();
    let mut max_attempts = None;
    let mut timeout = None;
    let mut priority = 0;
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "kind" => kind = Some(v.extract::<String>()?),
            "payload" => payload = Some(to_json(&v)?),
            "cmd" | "env" | "cwd" | "stdin" => {
                exec.insert(key, to_json(&v)?);
            }
            "max_attempts" => max_attempts = Some(v.extract::<u32>()?),
            "timeout" => timeout = Some(convert::duration("timeout", &v)?),
            "priority" => priority = v.extract()?,
            other => {
                return Err(invalid(format!(
                    "unknown task key {other:?}; known keys: {TASK_KEYS}"
                )));
            }
        }
    }
    let kind = kind.ok_or_else(|| invalid("a task needs a kind"))?;
    let payload = if kind == "exec" {
        if payload.is_some() {
            return Err(invalid(
                "an exec task takes cmd (and env, cwd, stdin), not payload",
            ));
        }
        if !exec.contains_key("cmd") {
            return Err(invalid("an exec task needs cmd = [PROGRAM, ARGS...]"));
        }
        serde_json::Value::Object(exec)
    } else {
        if !exec.is_empty() {
            return Err(invalid("cmd, env, cwd and stdin belong to exec tasks only"));
        }
        payload.unwrap_or_default()
    };
    let mut task = Task::new(kind, payload);
    task.max_attempts = max_attempts;
    task.timeout_ms = timeout.map(|t: Duration| t.as_millis() as u64);
    task.priority = priority;
    Ok(task)
}

/// The config file's shape of a schedule, so what `upsert_schedule` took comes back the same.
fn spec_dict(py: Python<'_>, spec: &ScheduleSpec) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("name", &spec.name)?;
    d.set_item("schedule", &spec.cron)?;
    d.set_item("queue", &spec.queue)?;
    d.set_item("timezone", &spec.timezone)?;
    d.set_item(
        "overlap",
        serde_json::to_value(spec.overlap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
    )?;
    d.set_item(
        "catchup",
        serde_json::to_value(spec.catchup)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
    )?;
    let tasks = PyList::empty(py);
    for t in &spec.tasks {
        let td = PyDict::new(py);
        td.set_item("kind", &t.kind)?;
        match (&t.payload, t.kind.as_str()) {
            (serde_json::Value::Object(map), "exec") => {
                for (k, v) in map {
                    td.set_item(k, from_json(py, v)?)?;
                }
            }
            (payload, _) => td.set_item("payload", from_json(py, payload)?)?,
        }
        if let Some(n) = t.max_attempts {
            td.set_item("max_attempts", n)?;
        }
        if let Some(ms) = t.timeout_ms {
            td.set_item("timeout", ms as f64 / 1000.0)?;
        }
        if t.priority != 0 {
            td.set_item("priority", t.priority)?;
        }
        tasks.append(td)?;
    }
    d.set_item("tasks", tasks)?;
    Ok(d.into_any().unbind())
}

fn schedule_info(py: Python<'_>, s: tickq::ScheduleInfo) -> PyResult<Py<PyAny>> {
    let info = ScheduleInfo {
        name: s.spec.name.clone(),
        spec: spec_dict(py, &s.spec)?,
        version: s.version,
        next_at: convert::datetime(py, s.next_at)?,
        watermark: convert::datetime(py, s.watermark)?,
        last_fired_at: convert::datetime(py, s.last_fired_at)?,
        fired: s.fired,
        skipped: s.skipped,
        paused: s.paused,
    };
    Ok(Py::new(py, info)?.into_any())
}

/// A serialisable answer (the documents the CLI's `--json` and the HTTP API give) as Python
/// dicts and lists.
fn document<T: serde::Serialize>(py: Python<'_>, doc: T) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_value(doc).map_err(|e| invalid(e.to_string()))?;
    Ok(from_json(py, &json)?.unbind())
}

impl Client {
    /// An inspector call, blocking or awaitable (`aio`), its answer turned into Python by
    /// `convert`.
    fn inspect<T, F>(
        &self,
        py: Python<'_>,
        aio: bool,
        call: impl FnOnce(tickq::Inspector) -> F,
        convert: Convert<T>,
    ) -> PyResult<Py<PyAny>>
    where
        F: std::future::Future<Output = tickq::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        bridge::run(py, aio, call(self.inspector.clone()), convert)
    }
}

#[pymethods]
impl Client {
    /// Connect to `url` (every form the Rust client takes), with a private CA and a client
    /// certificate for TLS when given.
    #[staticmethod]
    #[pyo3(signature = (aio, url, ca_file=None, cert_file=None, key_file=None))]
    fn connect(
        py: Python<'_>,
        aio: bool,
        url: String,
        ca_file: Option<std::path::PathBuf>,
        cert_file: Option<std::path::PathBuf>,
        key_file: Option<std::path::PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let shown = tickq::redact_url(&url);
        let mut tls = tickq::TlsFiles::new();
        if let Some(ca) = ca_file {
            tls = tls.ca_file(ca);
        }
        match (cert_file, key_file) {
            (Some(cert), Some(key)) => tls = tls.client_cert(cert, key),
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "a client certificate needs both cert_file and key_file",
                ));
            }
        }
        let options = tickq::ConnectOptions::new().tls(tls);
        bridge::run(
            py,
            aio,
            async move { tickq::Client::connect_with(&url, &options).await },
            boxed(move |py, inner: tickq::Client| {
                let inspector = inner.inspector();
                Ok(Py::new(
                    py,
                    Client {
                        inner,
                        inspector,
                        url: shown,
                    },
                )?
                .into_any())
            }),
        )
    }

    fn __repr__(&self) -> String {
        format!("Client({:?})", self.url)
    }

    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    #[pyo3(signature = (aio, queue, kind, payload=None, delay=None, at=None, id=None, unique_for=None, unique_key=None, max_attempts=None, timeout=None, priority=None, meta=None, shard_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue<'py>(
        &self,
        py: Python<'py>,
        aio: bool,
        queue: &str,
        kind: &str,
        payload: Option<Bound<'py, PyAny>>,
        delay: Option<Bound<'py, PyAny>>,
        at: Option<Bound<'py, PyAny>>,
        id: Option<String>,
        unique_for: Option<Bound<'py, PyAny>>,
        unique_key: Option<String>,
        max_attempts: Option<u32>,
        timeout: Option<Bound<'py, PyAny>>,
        priority: Option<i32>,
        meta: Option<Bound<'py, PyAny>>,
        shard_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let job = new_job(
            queue,
            kind,
            JobArgs {
                payload,
                delay,
                at,
                id,
                unique_for,
                unique_key,
                max_attempts,
                timeout,
                priority,
                meta,
                shard_key,
            },
        )?;
        let client = self.inner.clone();
        bridge::run(
            py,
            aio,
            async move { client.enqueue(job).await },
            boxed(|py, e: tickq::Enqueued| string(py, e.id)),
        )
    }

    fn enqueue_bulk(
        &self,
        py: Python<'_>,
        aio: bool,
        jobs: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let jobs = match jobs.cast::<PartialEnqueue>() {
            Ok(partial) => partial.get().unconfirmed_jobs(),
            Err(_) => jobs
                .try_iter()?
                .map(|j| new_job_from_dict(&j?))
                .collect::<PyResult<Vec<_>>>()?,
        };
        let client = self.inner.clone();
        bridge::run(
            py,
            aio,
            async move { client.enqueue_bulk(jobs).await },
            boxed(enqueued),
        )
    }

    #[pyo3(signature = (aio, id, queue=None))]
    fn job(
        &self,
        py: Python<'_>,
        aio: bool,
        id: String,
        queue: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let inspector = self.inspector.clone();
        let fut = async move {
            match queue {
                Some(q) => inspector.job_in(&q, &id).await,
                None => inspector.job(&id).await,
            }
        };
        bridge::run(py, aio, fut, boxed(job_info))
    }

    /// Wait until a job ends (completed, dead or cancelled) and answer it as it ended;
    /// `Timeout` when it has not ended within `timeout`.
    #[pyo3(signature = (aio, id, queue, timeout))]
    fn wait(
        &self,
        py: Python<'_>,
        aio: bool,
        id: String,
        queue: Option<String>,
        timeout: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let timeout = convert::duration("timeout", timeout)?;
        let client = self.inner.clone();
        let inspector = self.inspector.clone();
        let fut = async move {
            let queue = match queue {
                Some(q) => q,
                None => inspector.job(&id).await?.queue,
            };
            client.wait(&queue, &id, timeout).await
        };
        bridge::run(py, aio, fut, boxed(job_info))
    }

    /// Retry, kill, delete or cancel a job found by id: the action's document (the HTTP
    /// API's answer).
    fn act(&self, py: Python<'_>, aio: bool, action: &str, id: String) -> PyResult<Py<PyAny>> {
        let action: tickq::JobAction = action
            .parse()
            .map_err(|e: tickq::Error| invalid(e.to_string()))?;
        self.inspect(
            py,
            aio,
            move |i| async move { i.act(action, &id).await },
            boxed(document),
        )
    }

    /// Per queue: counts by state, processed, failed, paused, limits (the `tickq stats --json`
    /// document).
    fn stats(&self, py: Python<'_>, aio: bool) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.stats().await },
            boxed(document),
        )
    }

    /// The live nodes (workers with their queues and running jobs), as `tickq nodes --json`.
    fn nodes(&self, py: Python<'_>, aio: bool) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.nodes().await },
            boxed(document),
        )
    }

    /// One page of a queue's jobs in one state, with optional filters (the HTTP
    /// API's `GET /api/queues/{queue}/jobs` document).
    #[pyo3(signature = (aio, queue, state, kind=None, payload=None, error=None, cursor=None, limit=100))]
    #[allow(clippy::too_many_arguments)]
    fn jobs(
        &self,
        py: Python<'_>,
        aio: bool,
        queue: String,
        state: &str,
        kind: Option<String>,
        payload: Option<String>,
        error: Option<String>,
        cursor: Option<String>,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        let state: tickq::JobState = state
            .parse()
            .map_err(|e: tickq::Error| invalid(e.to_string()))?;
        let filter = tickq::JobFilter {
            kind,
            payload,
            error,
            ..Default::default()
        };
        let inspector = self.inspector.clone();
        let fut = async move {
            inspector
                .jobs(&queue, state, &filter, cursor.as_deref(), limit)
                .await
        };
        bridge::run(py, aio, fut, boxed(document))
    }

    /// Pause (`pause` true) or resume a queue.
    fn pause_queue(
        &self,
        py: Python<'_>,
        aio: bool,
        queue: String,
        pause: bool,
    ) -> PyResult<Py<PyAny>> {
        let inspector = self.inspector.clone();
        let fut = async move {
            if pause {
                inspector.pause_queue(&queue).await
            } else {
                inspector.resume_queue(&queue).await
            }
        };
        bridge::run(py, aio, fut, boxed(document))
    }

    /// Set a queue's limits across every node: `concurrency` (None: no limit) and `rate`
    /// (`"50/1s"`, or None).
    #[pyo3(signature = (aio, queue, concurrency=None, rate=None))]
    fn set_limits(
        &self,
        py: Python<'_>,
        aio: bool,
        queue: String,
        concurrency: Option<u32>,
        rate: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let rate = rate
            .map(|r| tickq::units::rate(&r))
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        let limits = tickq::QueueLimits { concurrency, rate };
        self.inspect(
            py,
            aio,
            move |i| async move { i.set_limits(&queue, limits).await },
            boxed(document),
        )
    }

    fn limits(&self, py: Python<'_>, aio: bool, queue: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.limits(&queue).await },
            boxed(document),
        )
    }

    /// Delete every job of a queue in `state` (not active).
    fn purge(&self, py: Python<'_>, aio: bool, queue: String, state: &str) -> PyResult<Py<PyAny>> {
        let state: tickq::JobState = state
            .parse()
            .map_err(|e: tickq::Error| invalid(e.to_string()))?;
        self.inspect(
            py,
            aio,
            move |i| async move { i.purge(&queue, state).await },
            boxed(document),
        )
    }

    fn upsert_schedule(
        &self,
        py: Python<'_>,
        aio: bool,
        spec: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let spec = schedule_spec(spec)?;
        let client = self.inner.clone();
        bridge::run(
            py,
            aio,
            async move { client.upsert_schedule(&spec).await },
            boxed(|py, u: tickq::Upserted| string(py, u.as_str().to_owned())),
        )
    }

    fn schedules(&self, py: Python<'_>, aio: bool) -> PyResult<Py<PyAny>> {
        let inspector = self.inspector.clone();
        bridge::run(
            py,
            aio,
            async move { inspector.schedule_infos().await },
            boxed(|py, list: Vec<tickq::ScheduleInfo>| {
                let out = PyList::empty(py);
                for s in list {
                    out.append(schedule_info(py, s)?)?;
                }
                Ok(out.into_any().unbind())
            }),
        )
    }

    fn schedule(&self, py: Python<'_>, aio: bool, name: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.schedule(&name).await },
            boxed(schedule_info),
        )
    }

    fn remove_schedule(&self, py: Python<'_>, aio: bool, name: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.remove_schedule(&name).await },
            none(),
        )
    }

    fn pause_schedule(&self, py: Python<'_>, aio: bool, name: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.pause_schedule(&name).await },
            none(),
        )
    }

    fn resume_schedule(&self, py: Python<'_>, aio: bool, name: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.resume_schedule(&name).await },
            none(),
        )
    }

    fn trigger_schedule(&self, py: Python<'_>, aio: bool, name: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.trigger_schedule(&name).await },
            boxed(|py, t: tickq::ScheduleTriggered| enqueued(py, t.jobs)),
        )
    }

    /// Make `queue` a sharded queue of `shards` sub-queues, or check that it is one
    /// (`Client::shard_queue` in Rust; docs/queue-control.md).
    fn shard_queue(
        &self,
        py: Python<'_>,
        aio: bool,
        queue: String,
        shards: u32,
    ) -> PyResult<Py<PyAny>> {
        let client = self.inner.clone();
        bridge::run(
            py,
            aio,
            async move { client.shard_queue(&queue, shards).await },
            none(),
        )
    }

    /// Submit a workflow, all or nothing: `{"id", "queue", "created"}`.
    #[pyo3(signature = (aio, queue, name, steps, batches=None, id=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit_flow(
        &self,
        py: Python<'_>,
        aio: bool,
        queue: &str,
        name: &str,
        steps: &Bound<'_, PyAny>,
        batches: Option<&Bound<'_, PyAny>>,
        id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let flow = crate::flow::workflow(queue, name, id, steps, batches)?;
        let client = self.inner.clone();
        bridge::run(
            py,
            aio,
            async move { client.submit_flow(flow).await },
            boxed(document),
        )
    }

    /// One workflow with its steps (the `tickq flow show --json` document).
    fn flow(&self, py: Python<'_>, aio: bool, id: String) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.flow(&id).await },
            boxed(document),
        )
    }

    /// Workflows, newest first (the `tickq flow ls --json` document).
    #[pyo3(signature = (aio, queue=None, limit=50))]
    fn flows(
        &self,
        py: Python<'_>,
        aio: bool,
        queue: Option<String>,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        self.inspect(
            py,
            aio,
            move |i| async move { i.flows(queue.as_deref(), limit).await },
            boxed(document),
        )
    }

    /// Cancel or retry a whole workflow: the action's document.
    fn act_on_flow(
        &self,
        py: Python<'_>,
        aio: bool,
        action: &str,
        id: String,
    ) -> PyResult<Py<PyAny>> {
        let inspector = self.inspector.clone();
        match action {
            "cancel" => bridge::run(
                py,
                aio,
                async move { inspector.cancel_flow(&id).await },
                boxed(document),
            ),
            "retry" => bridge::run(
                py,
                aio,
                async move { inspector.retry_flow(&id).await },
                boxed(document),
            ),
            other => Err(invalid(format!(
                "unknown workflow action {other:?}; expected cancel or retry"
            ))),
        }
    }

    /// A lock, not yet acquired.
    fn lock(
        &self,
        name: String,
        ttl: &Bound<'_, PyAny>,
        wait: &Bound<'_, PyAny>,
    ) -> PyResult<Lock> {
        tickq::validate_lock_name(&name).map_err(|e| invalid(e.to_string()))?;
        let ttl = convert::duration("ttl", ttl)?;
        let wait = convert::duration("wait", wait)?;
        Ok(Lock::new(
            self.inner.lock(&name).ttl(ttl).wait(wait),
            self.inner.fenced_store(&name),
            name,
        ))
    }
}
