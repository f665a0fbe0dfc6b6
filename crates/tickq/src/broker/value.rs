//! Reading the loosely typed replies of scripts.

use crate::{Error, Result};
use redis::Value;

pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::corrupt("expected a number from Redis")),
        Value::Nil => Ok(0),
        _ => Err(Error::corrupt("expected a number from Redis")),
    }
}

pub(crate) fn int_or_zero(v: &Value) -> i64 {
    int(v).unwrap_or(0)
}

pub(crate) fn text(v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        _ => Err(Error::corrupt("expected a string from Redis")),
    }
}

pub(crate) fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}
