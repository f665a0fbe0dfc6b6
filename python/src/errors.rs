//! Python exceptions that mirror `tickq::ErrorKind`, under one base `tickq.Error`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use tickq::ErrorKind;

create_exception!(
    tickq,
    Error,
    PyException,
    "Base of every error tickq raises."
);
create_exception!(
    tickq,
    NotFound,
    Error,
    "The job, queue, schedule or lock does not exist."
);
create_exception!(
    tickq,
    AlreadyExists,
    Error,
    "A job with that id or unique key exists already; `existing_id` names it."
);
create_exception!(
    tickq,
    InvalidArgument,
    Error,
    "Bad input, or a transition the object's state does not allow."
);
create_exception!(
    tickq,
    Unavailable,
    Error,
    "Redis could not be reached or answered with an error."
);
create_exception!(
    tickq,
    Timeout,
    Error,
    "An operation did not finish in time."
);
create_exception!(
    tickq,
    Corrupt,
    Error,
    "Data read from Redis could not be decoded."
);
create_exception!(
    tickq,
    Conflict,
    Error,
    "The object is in the wrong state for that (retry a running job, kill a finished one)."
);
create_exception!(
    tickq,
    RedisFull,
    Error,
    "Redis is above its memory high-water mark (or at maxmemory): the enqueue was refused."
);
create_exception!(tickq, Shutdown, Error, "The worker is shutting down.");
create_exception!(tickq, LockBusy, Error, "Someone else holds the lock.");

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("Unavailable", py.get_type::<Unavailable>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("Corrupt", py.get_type::<Corrupt>())?;
    m.add("RedisFull", py.get_type::<RedisFull>())?;
    m.add("Shutdown", py.get_type::<Shutdown>())?;
    m.add("LockBusy", py.get_type::<LockBusy>())?;
    Ok(())
}

/// The one place a tickq error becomes a Python exception.
pub(crate) fn to_py(py: Python<'_>, e: tickq::Error) -> PyErr {
    let message = e.to_string();
    let err = match e.kind() {
        ErrorKind::NotFound => NotFound::new_err(message),
        ErrorKind::AlreadyExists => AlreadyExists::new_err(message),
        ErrorKind::InvalidArgument => InvalidArgument::new_err(message),
        ErrorKind::Conflict => Conflict::new_err(message),
        ErrorKind::Unavailable => Unavailable::new_err(message),
        ErrorKind::Timeout => Timeout::new_err(message),
        ErrorKind::Corrupt => Corrupt::new_err(message),
        ErrorKind::RedisFull => RedisFull::new_err(message),
        ErrorKind::Shutdown => Shutdown::new_err(message),
        _ => Error::new_err(message),
    };
    let existing = e.existing_job().map(|j| j.id.clone());
    let _ = err.value(py).setattr("existing_id", existing);
    let partial = e
        .partial_enqueue()
        .and_then(|p| Py::new(py, crate::enqueued::PartialEnqueue::from(p)).ok());
    let _ = err.value(py).setattr("partial", partial);
    err
}

/// An `InvalidArgument` raised by the bindings themselves (bad Python-side input).
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    InvalidArgument::new_err(message.into())
}

create_exception!(
    tickq,
    JobStopped,
    pyo3::exceptions::PyBaseException,
    "Raised inside a sync handler whose job the worker stopped (time limit, lost lease, cancel, \
     forced shutdown). A BaseException, so `except Exception` in a handler does not swallow it."
);

pub(crate) fn register_worker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("JobStopped", m.py().get_type::<JobStopped>())
}
