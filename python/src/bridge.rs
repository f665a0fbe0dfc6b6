//! The one tokio runtime, and the two ways Python waits for it: a blocking call that releases
//! the GIL, or an asyncio future.
//!
//! An asyncio future may only be completed on its loop's thread, under the GIL. The runtime's
//! threads must never wait for the GIL (a Python thread spinning in C code holds it for as long
//! as it likes, and lease renewals would stall behind it), so finished results go to one plain
//! OS thread, the resolver, which takes the GIL and hands them to the loop with
//! `call_soon_threadsafe`, many per GIL acquisition when they pile up.

use crate::errors;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("tickq-runtime")
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// Turns the Rust answer into a Python value; runs under the GIL.
pub(crate) type Convert<T> = Box<dyn FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send>;

/// Run `fut` on the runtime: blocking with the GIL released (`aio` false), or as an asyncio
/// future of the running loop (`aio` true).
pub(crate) fn run<F, T>(
    py: Python<'_>,
    aio: bool,
    fut: F,
    convert: Convert<T>,
) -> PyResult<Py<PyAny>>
where
    F: Future<Output = tickq::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if aio {
        spawn(py, fut, convert)
    } else {
        let value = block(py, fut)?;
        convert(py, value)
    }
}

/// Wait for `fut` with the GIL released. Ctrl-C (a pending signal handler that raises) stops
/// the wait and abandons the operation.
pub(crate) fn block<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = tickq::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let task = runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    // A Receiver is not Sync; the Mutex lets the GIL-free closure borrow it.
    let rx = std::sync::Mutex::new(rx);
    loop {
        match py.detach(|| {
            rx.lock()
                .expect("receiver poisoned")
                .recv_timeout(Duration::from_millis(100))
        }) {
            Ok(result) => return result.map_err(|e| errors::to_py(py, e)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    task.abort();
                    return Err(interrupted);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(errors::Error::new_err(
                    "tickq: the operation panicked; this is a bug",
                ));
            }
        }
    }
}

/// Makes the Python answer (or exception) of a finished operation; runs under the GIL.
type Settle = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Pending {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    settle: Settle,
}

fn resolver() -> &'static mpsc::Sender<Pending> {
    static SENDER: OnceLock<mpsc::Sender<Pending>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Pending>();
        std::thread::Builder::new()
            .name("tickq-resolver".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    Python::attach(|py| {
                        settle(py, first);
                        while let Ok(next) = rx.try_recv() {
                            settle(py, next);
                        }
                    });
                }
            })
            .expect("cannot start the tickq resolver thread");
        tx
    })
}

static SETTLE_FN: OnceLock<Py<PyAny>> = OnceLock::new();

fn settle(py: Python<'_>, pending: Pending) {
    let (ok, value) = match (pending.settle)(py) {
        Ok(value) => (true, value),
        Err(err) => (false, err.into_value(py).into_any()),
    };
    let Some(settle_fn) = SETTLE_FN.get() else {
        return;
    };
    // A closed loop means nobody awaits the answer any more.
    let _ = pending.event_loop.call_method1(
        py,
        "call_soon_threadsafe",
        (settle_fn, pending.future, ok, value),
    );
}

/// Completes an asyncio future on its loop, unless it was cancelled meanwhile.
#[pyfunction]
fn _settle(future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_settle, m)?)?;
    let _ = SETTLE_FN.set(m.getattr("_settle")?.unbind());
    Ok(())
}

/// An asyncio future of the running loop that `fut`'s answer completes.
pub(crate) fn spawn<F, T>(py: Python<'_>, fut: F, convert: Convert<T>) -> PyResult<Py<PyAny>>
where
    F: Future<Output = tickq::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let pending_loop = event_loop.unbind();
    let pending_future = future.clone().unbind();
    runtime().spawn(async move {
        let out = fut.await;
        let settle = Box::new(move |py: Python<'_>| match out {
            Ok(value) => convert(py, value),
            Err(e) => Err(errors::to_py(py, e)),
        });
        let _ = resolver().send(Pending {
            event_loop: pending_loop,
            future: pending_future,
            settle,
        });
    });
    Ok(future.unbind())
}
