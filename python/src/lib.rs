//! tickq for Python: the native module `tickq._tickq`, a thin skin over the Rust library.
//!
//! | file | job |
//! | --- | --- |
//! | `bridge.rs` | the one tokio runtime; blocking calls (GIL released) and asyncio awaitables |
//! | `errors.rs` | `tickq.Error` and one subclass per `ErrorKind` |
//! | `convert.rs` | payloads (JSON <-> Python), durations, timestamps |
//! | `client.rs` | `Client`: enqueue, jobs, schedules, workflows; `JobInfo`, `ScheduleInfo` |
//! | `enqueued.rs` | `Enqueued`, and `PartialEnqueue` for a bulk that failed part way |
//! | `flow.rs` | workflows from Python dicts |
//! | `new_job.rs` | a `NewJob` from `enqueue`'s arguments or a bulk dict |
//! | `lock.rs` | `Lock`: a `LockGuard` with its lost signal and fenced store |
//! | `worker.rs` | `Worker`: a Rust `Handler` per Python callable, the thread pool, the asyncio pump |
//!
//! The rule that keeps Python from stalling tickq: no tokio thread ever takes the GIL. Leases,
//! renewals, acks and timeouts run on the runtime's threads; Python code runs on Python threads
//! (the handler pool, the asyncio loop) and two plain OS threads (the asyncio resolver and the
//! async-handler pump) are the only Rust threads that wait for the GIL.

mod bridge;
mod client;
mod convert;
mod enqueued;
mod errors;
mod flow;
mod lock;
mod new_job;
mod worker;

use pyo3::prelude::*;

#[pymodule]
fn _tickq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    errors::register_worker(m)?;
    bridge::register(m)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::JobInfo>()?;
    m.add_class::<enqueued::Enqueued>()?;
    m.add_class::<enqueued::PartialEnqueue>()?;
    m.add_class::<client::ScheduleInfo>()?;
    m.add_class::<lock::Lock>()?;
    m.add_class::<lock::FencedWrite>()?;
    m.add_class::<worker::NativeWorker>()?;
    m.add_class::<worker::Job>()?;
    m.add_class::<worker::Slot>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
