//! `Worker`: Python callables as tickq handlers.
//!
//! The Rust worker claims, leases, renews, times out and acks exactly as for Rust handlers;
//! a [`PyHandler`] only hands the job to Python and awaits the answer on a oneshot channel:
//!
//! - a plain function goes to the [`Pool`], a queue served by Python threads. A thread that
//!   finds work waiting takes it without releasing the GIL, so a busy worker pays no GIL
//!   hand-off per job; an idle one waits on a condition variable with the GIL released.
//! - an `async def` goes to the [`Pump`], a plain OS thread that takes the GIL once per batch
//!   of jobs and passes them to the asyncio loop with `call_soon_threadsafe`.
//!
//! When the Rust side stops a job (time limit, lost lease, cancel, forced shutdown) it drops
//! the handler's future; [`Abandon`] then tells Python. A sync handler still running gets
//! `tickq.JobStopped` raised in its thread and a replacement thread takes its place in the pool
//! (so a handler that never returns costs one thread, not the worker); an async one has its
//! task cancelled.

use crate::bridge::runtime;
use crate::client::Client;
use crate::convert::{self, from_json, result_text};
use crate::errors::{self, JobStopped};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::VecDeque;
use std::future::Future;
use std::os::raw::c_long;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;
use tickq::JobError;
use tokio::sync::oneshot;

type Answer = Result<Option<String>, JobError>;

/// What the Rust side and the Python thread running a delivery share. `abandoned` is set by
/// the Rust side; the other flags are only written under the GIL, which orders them against
/// the supervisor's housekeeping.
struct DeliveryState {
    id: u64,
    abandoned: AtomicBool,
    /// Ident of the Python thread running it; 0 until one starts it.
    thread: AtomicI64,
    done: AtomicBool,
    /// A replacement thread took the place of the one stuck in this job.
    replaced: AtomicBool,
}

impl DeliveryState {
    fn new() -> Arc<DeliveryState> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(DeliveryState {
            id: NEXT.fetch_add(1, SeqCst),
            abandoned: AtomicBool::new(false),
            thread: AtomicI64::new(0),
            done: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
        })
    }
}

struct Delivery {
    job: tickq::Job,
    handler: Arc<Py<PyAny>>,
    reply: oneshot::Sender<Answer>,
    state: Arc<DeliveryState>,
}

/// How long an idle pool thread keeps looking for work before it sleeps. Measured: at
/// concurrency 8 on the 2-core machine, 200 µs took a sync no-op worker from about 13,500 to
/// 19,000-20,000 jobs/s (docs/benchmarks.md); at concurrency 64 it changed nothing.
const SPIN: Duration = Duration::from_micros(200);

/// Sync deliveries waiting for a Python thread.
#[derive(Default)]
struct Pool {
    queue: Mutex<VecDeque<Delivery>>,
    ready: Condvar,
    closed: AtomicBool,
    /// Deliveries stopped by the Rust side while a Python thread ran them.
    stuck: Mutex<Vec<Arc<DeliveryState>>>,
    has_stuck: AtomicBool,
    /// One idle thread spins before sleeping; this says whether one does.
    spinning: AtomicBool,
}

impl Pool {
    fn push(&self, d: Delivery) {
        self.queue.lock().expect("pool poisoned").push_back(d);
        self.ready.notify_one();
    }

    fn try_pop(&self) -> Option<Delivery> {
        self.queue.lock().expect("pool poisoned").pop_front()
    }

    fn wait_pop(&self, timeout: Duration) -> Option<Delivery> {
        // The next job usually follows within a Redis round trip (the claim of the slot just
        // freed): one idle thread at a time spins briefly, GIL released, which saves the futex
        // sleep and wake-up per job; the others sleep at once, so idle threads cost no CPU.
        if self
            .spinning
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            let until = std::time::Instant::now() + SPIN;
            let mut found = None;
            while std::time::Instant::now() < until {
                found = self.try_pop();
                if found.is_some() {
                    break;
                }
                std::thread::yield_now();
            }
            self.spinning.store(false, SeqCst);
            if found.is_some() {
                return found;
            }
        }
        let mut queue = self.queue.lock().expect("pool poisoned");
        if let Some(d) = queue.pop_front() {
            return Some(d);
        }
        if self.closed.load(SeqCst) {
            return None;
        }
        let (mut queue, _) = self
            .ready
            .wait_timeout(queue, timeout)
            .expect("pool poisoned");
        queue.pop_front()
    }

    fn close(&self) {
        self.closed.store(true, SeqCst);
        self.ready.notify_all();
    }
}

enum PumpMsg {
    Run(Delivery),
    Cancel(u64),
}

/// Async deliveries on their way to the asyncio loop.
struct Pump {
    tx: Mutex<Option<mpsc::Sender<PumpMsg>>>,
}

impl Pump {
    fn send(&self, msg: PumpMsg) -> bool {
        match &*self.tx.lock().expect("pump poisoned") {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }
}

#[derive(Clone)]
enum Target {
    Threads(Arc<Pool>),
    Loop(Arc<Pump>),
}

/// A Python callable as a tickq [`Handler`](tickq::Handler).
struct PyHandler {
    callable: Arc<Py<PyAny>>,
    target: Target,
}

impl tickq::Handler for PyHandler {
    fn call(&self, job: tickq::Job) -> Pin<Box<dyn Future<Output = Answer> + Send>> {
        let (reply, answer) = oneshot::channel();
        let state = DeliveryState::new();
        let delivery = Delivery {
            job,
            handler: self.callable.clone(),
            reply,
            state: state.clone(),
        };
        let delivered = match &self.target {
            Target::Threads(pool) => {
                pool.push(delivery);
                true
            }
            Target::Loop(pump) => pump.send(PumpMsg::Run(delivery)),
        };
        let target = self.target.clone();
        Box::pin(async move {
            if !delivered {
                return Err(JobError::retry("the worker's asyncio loop is gone"));
            }
            let mut watch = Abandon {
                state,
                target: Some(target),
            };
            let answer = answer.await;
            watch.target = None;
            answer.unwrap_or_else(|_| {
                Err(JobError::retry(
                    "the Python worker stopped before the handler answered",
                ))
            })
        })
    }
}

/// Dropped with the handler's future: if no answer came, the Rust side stopped the job, and
/// Python is told so.
struct Abandon {
    state: Arc<DeliveryState>,
    target: Option<Target>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some(target) = self.target.take() else {
            return;
        };
        // Published before `thread` is read; the serving thread publishes `thread` before it
        // reads `abandoned`: one of the two sees the other.
        self.state.abandoned.store(true, SeqCst);
        match target {
            Target::Threads(pool) => {
                if self.state.thread.load(SeqCst) != 0 {
                    pool.stuck
                        .lock()
                        .expect("pool poisoned")
                        .push(self.state.clone());
                    pool.has_stuck.store(true, SeqCst);
                }
            }
            Target::Loop(pump) => {
                pump.send(PumpMsg::Cancel(self.state.id));
            }
        }
    }
}

/// The job a handler receives.
#[pyclass(module = "tickq._tickq", frozen)]
pub struct Job {
    inner: tickq::Job,
    payload: Py<PyAny>,
}

impl Job {
    fn report(
        &self,
        py: Python<'_>,
        aio: bool,
        value: f64,
        message: String,
    ) -> PyResult<Py<PyAny>> {
        let job = self.inner.clone();
        crate::bridge::run(
            py,
            aio,
            async move { job.progress(value, message).await },
            Box::new(|py, held: bool| {
                Ok(pyo3::types::PyBool::new(py, held)
                    .to_owned()
                    .into_any()
                    .unbind())
            }),
        )
    }

    fn results(&self, py: Python<'_>, aio: bool) -> PyResult<Py<PyAny>> {
        let job = self.inner.clone();
        crate::bridge::run(
            py,
            aio,
            async move { job.parent_results().await },
            Box::new(
                |py, results: std::collections::BTreeMap<String, Option<String>>| {
                    Ok(results.into_pyobject(py)?.into_any().unbind())
                },
            ),
        )
    }

    fn new(py: Python<'_>, inner: tickq::Job) -> PyResult<Job> {
        let payload = from_json(py, inner.payload())?.unbind();
        Ok(Job { inner, payload })
    }
}

#[pymethods]
impl Job {
    #[getter]
    fn id(&self) -> &str {
        self.inner.id()
    }
    #[getter]
    fn queue(&self) -> &str {
        self.inner.queue()
    }
    #[getter]
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyAny> {
        self.payload.clone_ref(py)
    }
    #[getter]
    fn attempt(&self) -> u32 {
        self.inner.attempt()
    }
    #[getter]
    fn fence(&self) -> u64 {
        self.inner.fence()
    }
    /// When the job was due: its enqueue time, the end of its delay or of its backoff.
    #[getter]
    fn due_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::datetime(py, self.inner.due_at())
    }
    /// When it was meant to run: a cron job's tick time, otherwise `due_at`.
    #[getter]
    fn scheduled_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let tick = self
            .inner
            .meta("scheduled_at")
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
        convert::datetime(py, tick.or(self.inner.due_at()))
    }
    /// The schedule that made it, for cron jobs.
    #[getter]
    fn cron(&self) -> Option<&str> {
        self.inner.meta("cron")
    }
    /// Whether the worker has stopped this job (time limit, lost lease, cancel, shutdown):
    /// a long handler should check it and return.
    #[getter]
    fn stopped(&self) -> bool {
        self.inner.is_stopped()
    }
    fn meta(&self, key: &str) -> Option<&str> {
        self.inner.meta(key)
    }
    /// The workflow this job is a step of, or None.
    #[getter]
    fn flow_id(&self) -> Option<&str> {
        self.inner.flow_id()
    }
    /// Its step id in the workflow, or None.
    #[getter]
    fn step(&self) -> Option<&str> {
        self.inner.step()
    }
    /// The step ids this step ran after (empty for a root step or a plain job).
    #[getter]
    fn parents(&self) -> Vec<String> {
        self.inner
            .parents()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
    /// Each parent step's result (what its handler returned, as text), or None for a parent
    /// that returned nothing or did not complete (a `run`/`skip` policy let this step go on).
    fn parent_results(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.results(py, false)
    }
    /// [`Job::parent_results`], awaitable (for async handlers).
    fn parent_results_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.results(py, true)
    }
    /// Report how far the job has got (0.0 to 1.0) and a short message; kept with the job and
    /// sent to watchers (the dashboard). False when this worker no longer holds the job.
    #[pyo3(signature = (value, message=String::new()))]
    fn progress(&self, py: Python<'_>, value: f64, message: String) -> PyResult<Py<PyAny>> {
        self.report(py, false, value, message)
    }
    /// [`Job::progress`], awaitable (for async handlers).
    #[pyo3(signature = (value, message=String::new()))]
    fn progress_async(&self, py: Python<'_>, value: f64, message: String) -> PyResult<Py<PyAny>> {
        self.report(py, true, value, message)
    }
    fn __repr__(&self) -> String {
        format!(
            "Job(id={:?}, queue={:?}, kind={:?}, attempt={}, fence={})",
            self.inner.id(),
            self.inner.queue(),
            self.inner.kind(),
            self.inner.attempt(),
            self.inner.fence()
        )
    }
}

/// Most of the traceback kept as a failed attempt's error text.
const MAX_ERROR_LEN: usize = 4000;

/// A handler's exception as tickq's outcome: `Kill` dies, `Retry(after=)` retries after that
/// delay, anything else retries by policy, with the traceback as the error text.
fn job_error(py: Python<'_>, err: PyErr) -> JobError {
    let value = err.value(py);
    if let Ok(action) = value
        .getattr("_tickq_action")
        .and_then(|a| a.extract::<String>())
    {
        let message = value.str().map(|s| s.to_string()).unwrap_or_default();
        let message = if message.is_empty() {
            action.clone()
        } else {
            message
        };
        if action == "kill" {
            return JobError::kill(message);
        }
        let after = value.getattr("after").ok().filter(|a| !a.is_none());
        return match after.map(|a| convert::duration("Retry(after=)", &a)) {
            Some(Ok(delay)) => JobError::retry_after(delay, message),
            Some(Err(e)) => JobError::retry(format!("{message} (bad Retry(after=): {e})")),
            None => JobError::retry(message),
        };
    }
    if err.is_instance_of::<JobStopped>(py) {
        return JobError::retry("stopped by the worker");
    }
    let text = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), value, err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat())
        .unwrap_or_else(|_| err.to_string());
    let text = text.trim_end();
    let start = text.len().saturating_sub(MAX_ERROR_LEN);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    JobError::retry(&text[start..])
}

fn run_sync(py: Python<'_>, d: &Delivery) -> Answer {
    let job = Job::new(py, d.job.clone())
        .and_then(|j| Py::new(py, j))
        .map_err(|e| JobError::kill(format!("the payload cannot be given to Python: {e}")))?;
    match d.handler.call1(py, (job,)) {
        Ok(value) => result_text(value.bind(py)).map_err(|e| job_error(py, e)),
        Err(e) => Err(job_error(py, e)),
    }
}

fn thread_ident() -> c_long {
    // What `threading.get_ident()` answers on POSIX, and what PyThreadState_SetAsyncExc takes.
    unsafe { libc::pthread_self() as c_long }
}

/// One async job on its way through the asyncio loop.
#[pyclass(module = "tickq._tickq", frozen)]
pub struct Slot {
    #[pyo3(get)]
    id: u64,
    #[pyo3(get)]
    job: Py<Job>,
    handler: Arc<Py<PyAny>>,
    reply: Mutex<Option<oneshot::Sender<Answer>>>,
}

#[pymethods]
impl Slot {
    #[getter]
    fn handler(&self, py: Python<'_>) -> Py<PyAny> {
        self.handler.clone_ref(py)
    }

    /// The handler returned `result`.
    fn ok(&self, py: Python<'_>, result: &Bound<'_, PyAny>) {
        let answer = result_text(result).map_err(|e| job_error(py, e));
        self.answer(answer);
    }

    /// The handler raised `exc`.
    fn err(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) {
        let answer = Err(job_error(py, PyErr::from_value(exc.clone())));
        self.answer(answer);
    }
}

impl Slot {
    fn answer(&self, answer: Answer) {
        if let Some(reply) = self.reply.lock().expect("slot poisoned").take() {
            let _ = reply.send(answer);
        }
    }
}

fn pump_loop(rx: mpsc::Receiver<PumpMsg>, event_loop: Py<PyAny>, dispatch: Py<PyAny>) {
    /// Most deliveries handed to the loop in one call.
    const BATCH: usize = 1024;
    while let Ok(first) = rx.recv() {
        Python::attach(|py| {
            let slots = PyList::empty(py);
            let cancels = PyList::empty(py);
            let take = |msg: PumpMsg| -> PyResult<()> {
                match msg {
                    PumpMsg::Run(d) if !d.state.abandoned.load(SeqCst) => {
                        let job = match Job::new(py, d.job) {
                            Ok(job) => job,
                            Err(e) => {
                                let _ = d.reply.send(Err(JobError::kill(format!(
                                    "the payload cannot be given to Python: {e}"
                                ))));
                                return Ok(());
                            }
                        };
                        let slot = Slot {
                            id: d.state.id,
                            job: Py::new(py, job)?,
                            handler: d.handler,
                            reply: Mutex::new(Some(d.reply)),
                        };
                        slots.append(Py::new(py, slot)?)
                    }
                    PumpMsg::Run(_) => Ok(()),
                    PumpMsg::Cancel(id) => cancels.append(id),
                }
            };
            let mut result = take(first);
            for _ in 1..BATCH {
                match rx.try_recv() {
                    Ok(msg) => result = result.and(take(msg)),
                    Err(_) => break,
                }
            }
            // A closed loop drops the slots: their jobs fail and are retried by policy.
            let sent = result.and_then(|()| {
                event_loop.call_method1(py, "call_soon_threadsafe", (&dispatch, slots, cancels))
            });
            if let Err(e) = sent {
                e.print(py);
            }
        });
    }
}

struct Finished {
    result: Mutex<Option<Result<(), String>>>,
    ready: Condvar,
}

/// The native half of `tickq.Worker`: the Rust worker (and scheduler) plus the pool and pump.
#[pyclass(module = "tickq._tickq", frozen)]
pub struct NativeWorker {
    worker: Arc<tickq::Worker>,
    scheduler: Option<Arc<tickq::Scheduler>>,
    stop: tickq::ShutdownHandle,
    pool: Arc<Pool>,
    pump: Arc<Pump>,
    pump_rx: Mutex<Option<mpsc::Receiver<PumpMsg>>>,
    has_async: bool,
    spawn_thread: Py<PyAny>,
    finished: Arc<Finished>,
    started: AtomicBool,
}

fn retry_policy(
    spec: &Bound<'_, PyAny>,
) -> PyResult<Box<dyn Fn(tickq::WorkerBuilder) -> tickq::WorkerBuilder + Send>> {
    let kind: String = spec.getattr("_tickq_retry")?.extract()?;
    match kind.as_str() {
        "exponential" => {
            let policy = tickq::ExponentialBackoff {
                base: convert::duration("base", &spec.getattr("base")?)?,
                factor: spec.getattr("factor")?.extract()?,
                max: convert::duration("max", &spec.getattr("max")?)?,
                jitter: spec.getattr("jitter")?.extract()?,
            };
            Ok(Box::new(move |b| b.retry_policy(policy)))
        }
        "fixed" => {
            let policy = tickq::FixedBackoff(convert::duration("delay", &spec.getattr("delay")?)?);
            Ok(Box::new(move |b| b.retry_policy(policy)))
        }
        other => Err(errors::invalid(format!("unknown retry policy {other:?}"))),
    }
}

#[pymethods]
impl NativeWorker {
    #[new]
    #[pyo3(signature = (client, queues, handlers, spawn_thread, concurrency, lease, job_timeout, shutdown_timeout, stop_grace, node=None, retry=None, scheduler=false, claim_batch=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        client: &Client,
        queues: Vec<(String, u32, u32)>,
        handlers: Vec<(String, Py<PyAny>, bool)>,
        spawn_thread: Py<PyAny>,
        concurrency: usize,
        lease: &Bound<'_, PyAny>,
        job_timeout: &Bound<'_, PyAny>,
        shutdown_timeout: &Bound<'_, PyAny>,
        stop_grace: &Bound<'_, PyAny>,
        node: Option<String>,
        retry: Option<&Bound<'_, PyAny>>,
        scheduler: bool,
        claim_batch: Option<usize>,
    ) -> PyResult<NativeWorker> {
        let pool = Arc::new(Pool::default());
        let (tx, rx) = mpsc::channel();
        let pump = Arc::new(Pump {
            tx: Mutex::new(Some(tx)),
        });
        // One handle stops the worker and the scheduler together.
        let stop = tickq::ShutdownHandle::default();
        let mut builder = tickq::Worker::builder(&client.inner)
            .shutdown(stop.clone())
            .concurrency(concurrency)
            .lease(convert::duration("lease", lease)?)
            .job_timeout(convert::duration("job_timeout", job_timeout)?)
            .shutdown_timeout(convert::duration("shutdown_timeout", shutdown_timeout)?)
            .stop_grace(convert::duration("stop_grace", stop_grace)?);
        for (queue, weight, shards) in queues {
            builder = builder.sharded_queue(queue, weight, shards);
        }
        let mut has_async = false;
        for (kind, callable, is_async) in handlers {
            has_async |= is_async;
            let target = if is_async {
                Target::Loop(pump.clone())
            } else {
                Target::Threads(pool.clone())
            };
            builder = builder.handler(
                kind,
                PyHandler {
                    callable: Arc::new(callable),
                    target,
                },
            );
        }
        if let Some(node) = node {
            builder = builder.node(node);
        }
        if let Some(n) = claim_batch {
            builder = builder.claim_batch(n);
        }
        if let Some(spec) = retry.filter(|r| !r.is_none()) {
            builder = retry_policy(spec)?(builder);
        }
        let worker = builder.build().map_err(|e| errors::to_py(py, e))?;
        let scheduler = scheduler.then(|| {
            Arc::new(
                tickq::Scheduler::builder(&client.inner)
                    .shutdown(stop.clone())
                    .build(),
            )
        });
        Ok(NativeWorker {
            worker: Arc::new(worker),
            scheduler,
            stop,
            pool,
            pump,
            pump_rx: Mutex::new(Some(rx)),
            has_async,
            spawn_thread,
            finished: Arc::new(Finished {
                result: Mutex::new(None),
                ready: Condvar::new(),
            }),
            started: AtomicBool::new(false),
        })
    }

    /// The id this worker holds leases under.
    #[getter]
    fn id(&self) -> &str {
        self.worker.id()
    }

    #[getter]
    fn has_async(&self) -> bool {
        self.has_async
    }

    /// Start the Rust worker (and scheduler) on the runtime; async handlers are passed to
    /// `dispatch(slots, cancels)` on `event_loop`.
    #[pyo3(signature = (event_loop=None, dispatch=None))]
    fn start(&self, event_loop: Option<Py<PyAny>>, dispatch: Option<Py<PyAny>>) -> PyResult<()> {
        if self.started.swap(true, SeqCst) {
            return Err(errors::invalid(
                "this worker has run already; make a new one",
            ));
        }
        if self.has_async {
            let (Some(event_loop), Some(dispatch)) = (event_loop, dispatch) else {
                return Err(errors::invalid("async handlers need an event loop"));
            };
            let rx = self
                .pump_rx
                .lock()
                .expect("pump poisoned")
                .take()
                .expect("started once");
            std::thread::Builder::new()
                .name("tickq-pump".into())
                .spawn(move || pump_loop(rx, event_loop, dispatch))
                .map_err(|e| {
                    errors::Error::new_err(format!("cannot start the pump thread: {e}"))
                })?;
        }
        let worker = self.worker.clone();
        let scheduler = self.scheduler.clone();
        let finished = self.finished.clone();
        runtime().spawn(async move {
            let fire = scheduler.map(|s| tokio::spawn(async move { s.run().await }));
            let result = worker.run().await.map_err(|e| e.to_string());
            if let Some(task) = fire {
                let _ = task.await;
            }
            *finished.result.lock().expect("finished poisoned") = Some(result);
            finished.ready.notify_all();
        });
        Ok(())
    }

    /// Serve sync handlers on the calling (Python) thread until the pool closes, or until a
    /// replacement took this thread's place.
    fn serve(&self, py: Python<'_>) -> PyResult<()> {
        let pool = &self.pool;
        loop {
            let delivery = match pool.try_pop() {
                Some(d) => d,
                None => {
                    if pool.closed.load(SeqCst) {
                        return Ok(());
                    }
                    match py.detach(|| pool.wait_pop(Duration::from_millis(250))) {
                        Some(d) => d,
                        None => continue,
                    }
                }
            };
            let state = delivery.state.clone();
            let me = thread_ident();
            state.thread.store(me as i64, SeqCst);
            if state.abandoned.load(SeqCst) {
                state.done.store(true, SeqCst);
                continue;
            }
            let answer = run_sync(py, &delivery);
            state.done.store(true, SeqCst);
            let _ = delivery.reply.send(answer);
            if state.replaced.load(SeqCst) {
                // The interrupt meant for the handler may still be pending: clear it, and leave
                // the pool to the replacement.
                unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(me, std::ptr::null_mut()) };
                return Ok(());
            }
        }
    }

    /// Interrupt sync handlers the Rust side stopped, and replace their threads. Called by the
    /// supervisor a few times a second.
    fn housekeep(&self, py: Python<'_>) -> PyResult<()> {
        if !self.pool.has_stuck.swap(false, SeqCst) {
            return Ok(());
        }
        let stuck = std::mem::take(&mut *self.pool.stuck.lock().expect("pool poisoned"));
        for state in stuck {
            // Under the GIL the serving thread cannot move past `done` meanwhile.
            if state.done.load(SeqCst) || state.replaced.swap(true, SeqCst) {
                continue;
            }
            let thread = state.thread.load(SeqCst) as c_long;
            let stopped = py.get_type::<JobStopped>();
            unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(thread, stopped.as_ptr()) };
            self.spawn_thread.call0(py)?;
        }
        Ok(())
    }

    /// Wait up to `timeout` seconds for the worker to finish (housekeeping first); answers
    /// whether it has.
    fn wait(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        self.housekeep(py)?;
        let timeout =
            Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(1));
        let finished = self.finished.clone();
        Ok(py.detach(move || {
            let result = finished.result.lock().expect("finished poisoned");
            if result.is_some() {
                return true;
            }
            let (result, _) = finished
                .ready
                .wait_timeout(result, timeout)
                .expect("finished poisoned");
            result.is_some()
        }))
    }

    /// Raise the worker's error, if it ended with one.
    fn result(&self) -> PyResult<()> {
        match &*self.finished.result.lock().expect("finished poisoned") {
            Some(Err(e)) => Err(errors::Error::new_err(e.clone())),
            _ => Ok(()),
        }
    }

    /// Stop claiming, let running jobs finish (up to the shutdown timeout), hand the rest back.
    fn shutdown(&self) {
        self.stop.shutdown();
    }

    /// Stop now: running jobs are handed back without charging an attempt.
    fn force(&self) {
        self.stop.force();
    }

    /// Release the serving threads and the pump once the worker has finished.
    fn close(&self) {
        self.pool.close();
        self.pump.tx.lock().expect("pump poisoned").take();
    }

    /// What this worker did so far.
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.worker.stats();
        let d = PyDict::new(py);
        d.set_item("completed", s.completed)?;
        d.set_item("failed", s.failed)?;
        d.set_item("stale", s.stale)?;
        d.set_item("abandoned", s.abandoned)?;
        d.set_item("handed_back", s.handed_back)?;
        d.set_item("recovered", s.recovered)?;
        if let Some(sched) = &self.scheduler {
            d.set_item("ticks_fired", sched.ticks_fired())?;
        }
        Ok(d.into_any().unbind())
    }
}
