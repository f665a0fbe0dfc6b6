//! Conversions between Python values and tickq's: JSON payloads, durations, timestamps.

use crate::errors::invalid;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;
use std::time::Duration;

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

/// A Python value as JSON: dict (str keys), list, tuple, str, int, float, bool and None.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "payload is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(invalid(format!(
            "payload integer {obj} does not fit in 64 bits"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| invalid(format!("payload float {v} is not valid JSON")));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                invalid(format!(
                    "payload dict keys must be str, not {}",
                    type_name(&k)
                ))
            })?;
            map.insert(key.to_cow()?.into_owned(), to_json_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_json_at(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_json_at(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    Err(invalid(format!(
        "payload must be JSON: dict, list, tuple, str, int, float, bool or None, not {}",
        type_name(obj)
    )))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// JSON as a Python value.
pub(crate) fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, from_json(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A duration given as seconds (int or float), a `datetime.timedelta`, or a DUR string like the
/// CLI's (`500ms`, `30s`, `5m`, `2h`, `1d`).
pub(crate) fn duration(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if let Ok(text) = obj.cast::<PyString>() {
        return tickq::units::duration(&text.to_cow()?)
            .map_err(|e| invalid(format!("{what}: {e}")));
    }
    let secs: f64 = if obj.hasattr("total_seconds")? {
        obj.call_method0("total_seconds")?.extract()?
    } else {
        obj.extract().map_err(|_| {
            invalid(format!(
                "{what} must be seconds (int or float) or a timedelta, not {}",
                type_name(obj)
            ))
        })?
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid(format!(
            "{what} must be a finite, non-negative number of seconds, not {secs}"
        )));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| invalid(format!("{what}: {e}")))
}

pub(crate) fn opt_duration(
    what: &str,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Duration>> {
    obj.filter(|o| !o.is_none())
        .map(|o| duration(what, o))
        .transpose()
}

/// A point in time given as an aware `datetime`, Unix seconds, or a TIME string like the CLI's
/// (RFC 3339 or Unix ms).
pub(crate) fn timestamp(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<jiff::Timestamp> {
    if let Ok(text) = obj.cast::<PyString>() {
        return tickq::units::time(&text.to_cow()?).map_err(|e| invalid(format!("{what}: {e}")));
    }
    let secs: f64 = if obj.hasattr("tzinfo")? {
        if obj.getattr("tzinfo")?.is_none() {
            return Err(invalid(format!(
                "{what} is a naive datetime; pass an aware one (e.g. with tzinfo=datetime.timezone.utc)"
            )));
        }
        obj.call_method0("timestamp")?.extract()?
    } else {
        obj.extract().map_err(|_| {
            invalid(format!(
                "{what} must be an aware datetime or Unix seconds, not {}",
                type_name(obj)
            ))
        })?
    };
    if !secs.is_finite() {
        return Err(invalid(format!("{what} must be finite")));
    }
    jiff::Timestamp::from_millisecond((secs * 1000.0).round() as i64)
        .map_err(|e| invalid(format!("{what}: {e}")))
}

/// A timestamp as an aware UTC `datetime`.
pub(crate) fn datetime(py: Python<'_>, ts: Option<jiff::Timestamp>) -> PyResult<Py<PyAny>> {
    let Some(ts) = ts else { return Ok(py.None()) };
    let module = py.import("datetime")?;
    let utc = module.getattr("timezone")?.getattr("utc")?;
    let secs = ts.as_millisecond() as f64 / 1000.0;
    Ok(module
        .getattr("datetime")?
        .call_method1("fromtimestamp", (secs, utc))?
        .unbind())
}

/// A Python value as the text kept with a completed job: None is no result, a str is kept as
/// it is, anything else as JSON (or its `str()` when it is not JSON).
pub(crate) fn result_text(value: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Some(s.to_cow()?.into_owned()));
    }
    match to_json(value) {
        Ok(json) => Ok(Some(json.to_string())),
        Err(_) => Ok(Some(value.str()?.to_cow()?.into_owned())),
    }
}
