//! What an enqueue answers: `Enqueued` per job, and `PartialEnqueue` when a bulk failed part
//! way (the `partial` attribute of the error): which jobs went in, and the others ready to be
//! sent again, each at most once.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tickq::NewJob;

/// The answer to one enqueue of a bulk.
#[pyclass(module = "tickq._tickq", frozen, get_all)]
pub struct Enqueued {
    /// The job id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its state now.
    pub state: String,
    /// False when a job with that id was there already (left as it was).
    pub created: bool,
    /// True when another job holds the unique key: `id` is that job.
    pub duplicate: bool,
}

#[pymethods]
impl Enqueued {
    fn __repr__(&self) -> String {
        format!(
            "Enqueued(id={:?}, queue={:?}, state={:?}, created={}, duplicate={})",
            self.id,
            self.queue,
            self.state,
            py_bool(self.created),
            py_bool(self.duplicate)
        )
    }
}

pub(crate) fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn one(py: Python<'_>, e: tickq::Enqueued) -> PyResult<Py<Enqueued>> {
    Py::new(
        py,
        Enqueued {
            id: e.id,
            queue: e.queue,
            state: e.state.to_string(),
            created: e.created,
            duplicate: e.duplicate,
        },
    )
}

/// A list of `Enqueued`.
pub(crate) fn enqueued(py: Python<'_>, list: Vec<tickq::Enqueued>) -> PyResult<Py<PyAny>> {
    let out = PyList::empty(py);
    for e in list {
        out.append(one(py, e)?)?;
    }
    Ok(out.into_any().unbind())
}

/// What an `enqueue_bulk` that failed part way did (connection lost, timeout, Redis full):
/// nothing more was sent after the failure. `enqueued` are the jobs Redis confirmed;
/// `unconfirmed` are the others, each with its id fixed before sending (not sent, or sent with
/// no answer). Passing this object to `enqueue_bulk` sends those again: none is created twice
/// (one that went in answers `created=False`), and a sharded queue's job goes to the shard it
/// was sent to.
#[pyclass(module = "tickq._tickq", frozen)]
pub struct PartialEnqueue {
    enqueued: Vec<(usize, tickq::Enqueued)>,
    unconfirmed: Vec<(usize, NewJob)>,
}

impl PartialEnqueue {
    /// The jobs to send again.
    pub(crate) fn unconfirmed_jobs(&self) -> Vec<NewJob> {
        self.unconfirmed
            .iter()
            .map(|(_, job)| job.clone())
            .collect()
    }
}

impl From<&tickq::PartialEnqueue> for PartialEnqueue {
    fn from(p: &tickq::PartialEnqueue) -> Self {
        PartialEnqueue {
            enqueued: p.enqueued.clone(),
            unconfirmed: p.unconfirmed.clone(),
        }
    }
}

#[pymethods]
impl PartialEnqueue {
    /// `[(index in the call, Enqueued), ...]`, in order.
    #[getter]
    fn enqueued(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let out = PyList::empty(py);
        for (i, e) in &self.enqueued {
            let pair = PyTuple::new(
                py,
                [
                    i.into_pyobject(py)?.into_any(),
                    one(py, e.clone())?.into_bound(py).into_any(),
                ],
            )?;
            out.append(pair)?;
        }
        Ok(out.into_any().unbind())
    }

    /// `[(index in the call, job id), ...]` of the jobs without an answer, in order.
    #[getter]
    fn unconfirmed(&self) -> Vec<(usize, String)> {
        self.unconfirmed
            .iter()
            .map(|(i, job)| (*i, job.assigned_id().unwrap_or_default().to_owned()))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "PartialEnqueue(enqueued={}, unconfirmed={})",
            self.enqueued.len(),
            self.unconfirmed.len()
        )
    }
}
