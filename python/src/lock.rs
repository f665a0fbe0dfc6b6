//! `Lock`: one acquisition of a tickq lock, with its fence, lost signal and fenced store.

use crate::bridge::{self, runtime};
use crate::convert;
use crate::errors::{self, LockBusy};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use std::sync::{Arc, Mutex};

/// The guard while held; `None` before acquire and after release.
type Held = Arc<Mutex<Option<tickq::LockGuard>>>;

#[pyclass(module = "tickq._tickq", frozen)]
pub struct Lock {
    builder: tickq::LockBuilder,
    store: tickq::FencedStore,
    name: String,
    held: Held,
    /// Fence and lost signal of the latest acquisition; they outlive the guard, so a holder can
    /// still ask whether it had lost the lock after releasing it.
    last: Arc<Mutex<Option<(u64, tickq::LostSignal)>>>,
}

impl Lock {
    pub(crate) fn new(
        builder: tickq::LockBuilder,
        store: tickq::FencedStore,
        name: String,
    ) -> Lock {
        Lock {
            builder,
            store,
            name,
            held: Arc::default(),
            last: Arc::default(),
        }
    }

    fn last(&self) -> Option<(u64, tickq::LostSignal)> {
        self.last.lock().expect("lock state poisoned").clone()
    }

    fn fence_or_raise(&self) -> PyResult<u64> {
        self.last()
            .map(|(fence, _)| fence)
            .ok_or_else(|| errors::invalid(format!("lock {} was never acquired", self.name)))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The guard releases itself on drop, through the runtime it was made on.
        let _enter = runtime().enter();
        self.held.lock().map(|mut g| g.take()).ok();
    }
}

fn reason_name(reason: tickq::LostReason) -> &'static str {
    match reason {
        tickq::LostReason::Taken => "taken",
        tickq::LostReason::Expired => "expired",
        _ => "lost",
    }
}

/// The answer to a fenced write: written, or refused because a later holder's fence is there.
#[pyclass(module = "tickq._tickq", frozen, get_all)]
pub struct FencedWrite {
    pub written: bool,
    /// For a refused write: the latest fence handed out for the lock.
    pub latest: Option<u64>,
    /// For a refused write: the fence the stored value was written with.
    pub stored: Option<u64>,
}

#[pymethods]
impl FencedWrite {
    fn __bool__(&self) -> bool {
        self.written
    }

    fn __repr__(&self) -> String {
        match (self.written, self.latest, self.stored) {
            (true, _, _) => "FencedWrite(written=True)".into(),
            (false, l, s) => format!("FencedWrite(written=False, latest={l:?}, stored={s:?})"),
        }
    }
}

#[pymethods]
impl Lock {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Take the lock (waiting up to the lock's `wait`): True when held.
    fn acquire(&self, py: Python<'_>, aio: bool) -> PyResult<Py<PyAny>> {
        if self.held.lock().expect("lock state poisoned").is_some() {
            return Err(errors::invalid(format!(
                "lock {} is held already by this object",
                self.name
            )));
        }
        let builder = self.builder.clone();
        let held = self.held.clone();
        let fut = async move {
            let guard = builder.acquire().await?;
            let info = guard.as_ref().map(|g| (g.fence(), g.lost_signal()));
            *held.lock().expect("lock state poisoned") = guard;
            Ok(info)
        };
        let last = self.last_slot();
        bridge::run(
            py,
            aio,
            fut,
            Box::new(move |py, info: Option<(u64, tickq::LostSignal)>| {
                let got = info.is_some();
                if got {
                    *last.lock().expect("lock state poisoned") = info;
                }
                Ok(pyo3::types::PyBool::new(py, got)
                    .to_owned()
                    .into_any()
                    .unbind())
            }),
        )
    }

    /// Give the lock back: True when it was still ours.
    fn release(&self, py: Python<'_>, aio: bool) -> PyResult<Py<PyAny>> {
        let guard = self.held.lock().expect("lock state poisoned").take();
        let fut = async move {
            match guard {
                Some(g) => Ok(g.release().await? == tickq::Released::Released),
                None => Ok(false),
            }
        };
        bridge::run(
            py,
            aio,
            fut,
            Box::new(|py, ours: bool| {
                Ok(pyo3::types::PyBool::new(py, ours)
                    .to_owned()
                    .into_any()
                    .unbind())
            }),
        )
    }

    /// Raises `LockBusy` (for the context managers).
    fn busy(&self) -> PyErr {
        LockBusy::new_err(format!("lock {} is held by someone else", self.name))
    }

    #[getter]
    fn held(&self) -> bool {
        self.held.lock().expect("lock state poisoned").is_some()
    }

    /// The fencing token of the latest acquisition.
    #[getter]
    fn fence(&self) -> PyResult<u64> {
        self.fence_or_raise()
    }

    /// Whether the latest acquisition was lost (taken by another holder, or expired before a
    /// renewal succeeded).
    #[getter]
    fn lost(&self) -> bool {
        self.last().is_some_and(|(_, s)| s.is_lost())
    }

    /// "taken", "expired", or None while held.
    #[getter]
    fn lost_reason(&self) -> Option<&'static str> {
        self.last().and_then(|(_, s)| s.reason()).map(reason_name)
    }

    /// Block until the lock is lost or `timeout` seconds pass: the reason, or None.
    #[pyo3(signature = (aio, timeout=None))]
    fn wait_lost(
        &self,
        py: Python<'_>,
        aio: bool,
        timeout: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let signal = self
            .last()
            .map(|(_, s)| s)
            .ok_or_else(|| errors::invalid(format!("lock {} was never acquired", self.name)))?;
        let timeout = convert::opt_duration("timeout", timeout.as_ref())?;
        let fut = async move {
            Ok(match timeout {
                Some(t) => tokio::time::timeout(t, signal.wait()).await.ok(),
                None => Some(signal.wait().await),
            })
        };
        bridge::run(
            py,
            aio,
            fut,
            Box::new(|py, r: Option<tickq::LostReason>| match r {
                Some(r) => Ok(PyString::new(py, reason_name(r)).into_any().unbind()),
                None => Ok(py.None()),
            }),
        )
    }

    /// Write `value` under `key` in the lock's fenced store with this acquisition's fence.
    fn fenced_set(
        &self,
        py: Python<'_>,
        aio: bool,
        key: String,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let fence = self.fence_or_raise()?;
        let value = bytes_of(value)?;
        let store = self.store.clone();
        bridge::run(
            py,
            aio,
            async move { store.set(&key, value, fence).await },
            Box::new(|py, w: tickq::FencedWrite| {
                let out = match w {
                    tickq::FencedWrite::Written => FencedWrite {
                        written: true,
                        latest: None,
                        stored: None,
                    },
                    tickq::FencedWrite::Stale { latest, stored } => FencedWrite {
                        written: false,
                        latest: Some(latest),
                        stored: Some(stored),
                    },
                };
                Ok(Py::new(py, out)?.into_any())
            }),
        )
    }

    /// The value under `key` and the fence it was written with, or None.
    fn fenced_get(&self, py: Python<'_>, aio: bool, key: String) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        bridge::run(
            py,
            aio,
            async move { store.get(&key).await },
            Box::new(|py, v: Option<tickq::Fenced>| match v {
                Some(f) => Ok(PyTuple::new(
                    py,
                    [
                        PyBytes::new(py, &f.value).into_any(),
                        f.fence.into_pyobject(py)?.into_any(),
                    ],
                )?
                .into_any()
                .unbind()),
                None => Ok(py.None()),
            }),
        )
    }
}

impl Lock {
    fn last_slot(&self) -> Arc<Mutex<Option<(u64, tickq::LostSignal)>>> {
        self.last.clone()
    }
}

fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    value
        .extract::<Vec<u8>>()
        .map_err(|_| errors::invalid("a fenced value is bytes or str"))
}
