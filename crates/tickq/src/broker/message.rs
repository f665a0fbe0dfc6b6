//! The stored job format (the `data` field of a job hash), versioned.
//!
//! Only what a worker needs to run the job lives here; everything that changes over the job's
//! life (state, attempt, fence, times, errors) is a separate hash field that scripts update.
//!
//! Version 2 stores neither the job's id nor its queue: both are in the job's key already, and
//! leaving them out keeps a small job's envelope under Redis' `hash-max-listpack-value` (64
//! bytes), so the whole job hash stays a compact listpack (264 bytes for a no-op job instead of
//! 761 as a hash table). Version 1 envelopes (which have both) are still read, so workers can be
//! upgraded before producers; a version 1 tickq dead-letters version 2 jobs with a message
//! naming both versions (docs/redis-keys.md).

use crate::broker::keys::SCHEMA_VERSION;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The envelope versions this tickq reads: its own, and version 1 (which also stored the id
/// and the queue).
pub(crate) const READABLE_VERSIONS: [u32; 2] = [1, SCHEMA_VERSION];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Envelope {
    pub(crate) v: u32,
    /// From the job's key, not stored (version 1 stored it; the key wins).
    #[serde(skip_serializing, default)]
    pub(crate) id: String,
    /// From the job's key, not stored (version 1 stored it; the key wins).
    #[serde(skip_serializing, default)]
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
    pub(crate) fn encode_new(job: &crate::NewJob) -> String {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u32,
            kind: &'a str,
            payload: &'a serde_json::Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            timeout_ms: Option<u64>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            meta: &'a BTreeMap<String, String>,
        }
        let borrowed = Borrowed {
            v: SCHEMA_VERSION,
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

    /// The envelope of job `id` of `queue` (both from its key).
    pub(crate) fn decode(data: &[u8], id: &str, queue: &str) -> Result<Envelope> {
        if data.is_empty() {
            return Err(Error::corrupt("job has no data field"));
        }
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(data)
            .map_err(|e| Error::corrupt("job data is not a tickq job envelope").with_source(e))?;
        if !READABLE_VERSIONS.contains(&version.v) {
            return Err(Error::corrupt(format!(
                "job format version {} is not readable by this tickq (reads {}); run a \
                 matching tickq version",
                version.v,
                READABLE_VERSIONS.map(|v| v.to_string()).join(" and ")
            )));
        }
        let mut envelope: Envelope = serde_json::from_slice(data)
            .map_err(|e| Error::corrupt("job envelope does not decode").with_source(e))?;
        id.clone_into(&mut envelope.id);
        queue.clone_into(&mut envelope.queue);
        Ok(envelope)
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
            assert_eq!(Envelope::encode_new(&job), owned.encode());
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(
            Envelope::decode(e.encode().as_bytes(), "j1", "q").unwrap(),
            e
        );
    }

    /// The id and the queue are the key's: not stored, so that a small job's hash stays a
    /// listpack (every value at most 64 bytes).
    #[test]
    fn a_no_op_job_encodes_in_64_bytes_without_its_id_or_queue() {
        let job =
            crate::NewJob::new("some-queue", "noop").payload(serde_json::json!({"i": 123456}));
        let text = Envelope::encode_new(&job);
        assert_eq!(text, r#"{"v":2,"kind":"noop","payload":{"i":123456}}"#);
        assert!(text.len() <= 64);
        let back = Envelope::decode(text.as_bytes(), "j9", "some-queue").unwrap();
        assert_eq!(
            (back.id.as_str(), back.queue.as_str()),
            ("j9", "some-queue")
        );
    }

    /// Version 1 stored the id and the queue; it is still read (the key's id and queue win).
    #[test]
    fn reads_version_1_envelopes() {
        let v1 = br#"{"v":1,"id":"old","queue":"q0","kind":"email","payload":{"to":"a@b"},"timeout_ms":1500}"#;
        let e = Envelope::decode(v1, "j1", "q").unwrap();
        assert_eq!(e.v, 1);
        assert_eq!(
            (e.id.as_str(), e.queue.as_str(), e.kind.as_str()),
            ("j1", "q", "email")
        );
        assert_eq!(e.payload, serde_json::json!({"to": "a@b"}));
        assert_eq!(e.timeout_ms, Some(1500));
    }

    #[test]
    fn rejects_garbage_other_versions_and_empty() {
        assert_eq!(
            Envelope::decode(b"\xff{", "j1", "q").unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
        assert_eq!(
            Envelope::decode(b"", "j1", "q").unwrap_err().kind(),
            crate::ErrorKind::Corrupt
        );
        let mut e = sample();
        e.v = 99;
        let err = Envelope::decode(e.encode().as_bytes(), "j1", "q").unwrap_err();
        assert!(err.message().contains("version 99"), "{err}");
        assert!(err.message().contains("reads 1 and 2"), "{err}");
    }
}
