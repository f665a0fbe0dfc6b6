//! The stored job format (the `data` field of a job hash), versioned.
//!
//! Only what a worker needs to run the job lives here; everything that changes over the job's
//! life (state, attempt, fence, times, errors) is a separate hash field that scripts update.

use crate::broker::keys::SCHEMA_VERSION;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Envelope {
    pub(crate) v: u32,
    pub(crate) id: String,
    pub(crate) queue: String,
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout_ms: Option<u64>,
    /// Free-form string metadata (cron name and tick, signatures, caller tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) meta: BTreeMap<String, String>,
}

impl Envelope {
    pub(crate) fn new(
        id: String,
        queue: &str,
        kind: &str,
        payload: serde_json::Value,
        timeout_ms: Option<u64>,
        meta: BTreeMap<String, String>,
    ) -> Envelope {
        Envelope {
            v: SCHEMA_VERSION,
            id,
            queue: queue.to_owned(),
            kind: kind.to_owned(),
            payload,
            timeout_ms,
            meta,
        }
    }

    /// The envelope of a job being enqueued, encoded without copying its payload: the same
    /// text as `Envelope::new(...).encode()`.
    pub(crate) fn encode_new(id: &str, job: &crate::NewJob) -> String {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u32,
            id: &'a str,
            queue: &'a str,
            kind: &'a str,
            payload: &'a serde_json::Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            timeout_ms: Option<u64>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            meta: &'a BTreeMap<String, String>,
        }
        let borrowed = Borrowed {
            v: SCHEMA_VERSION,
            id,
            queue: &job.queue,
            kind: &job.kind,
            payload: &job.payload,
            timeout_ms: job.timeout.map(|t| t.as_millis() as u64),
            meta: &job.meta,
        };
        serde_json::to_string(&borrowed).expect("job envelope serialises")
    }

    pub(crate) fn encode(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).expect("job envelope serialises")
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Envelope> {
        if data.is_empty() {
            return Err(Error::corrupt("job has no data field"));
        }
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(data)
            .map_err(|e| Error::corrupt("job data is not a tickq job envelope").with_source(e))?;
        if version.v != SCHEMA_VERSION {
            return Err(Error::corrupt(format!(
                "job format version {} is not readable by this tickq (reads {SCHEMA_VERSION}); \
                 run a matching tickq version",
                version.v
            )));
        }
        serde_json::from_slice(data)
            .map_err(|e| Error::corrupt("job envelope does not decode").with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            v: SCHEMA_VERSION,
            id: "j1".into(),
            queue: "q".into(),
            kind: "email".into(),
            payload: serde_json::json!({"to": "a@b"}),
            timeout_ms: Some(1500),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn a_new_job_encodes_as_its_envelope_does() {
        for job in [
            crate::NewJob::new("q", "email").payload(serde_json::json!({"to": "a@b"})),
            crate::NewJob::new("q", "email")
                .timeout(std::time::Duration::from_millis(1500))
                .meta("tag", "x"),
        ] {
            let owned = Envelope::new(
                "j1".into(),
                &job.queue,
                &job.kind,
                job.payload.clone(),
                job.timeout.map(|t| t.as_millis() as u64),
                job.meta.clone(),
            );
            assert_eq!(Envelope::encode_new("j1", &job), owned.encode());
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(Envelope::decode(e.encode().as_bytes()).unwrap(), e);
    }

    #[test]
    fn rejects_garbage_other_versions_and_empty() {
        assert_eq!(
            Envelope::decode(b"\xff{").unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
        assert_eq!(
            Envelope::decode(b"").unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
        let mut e = sample();
        e.v = 99;
        let err = Envelope::decode(e.encode().as_bytes()).unwrap_err();
        assert!(err.message().contains("version 99"), "{err}");
    }
}
