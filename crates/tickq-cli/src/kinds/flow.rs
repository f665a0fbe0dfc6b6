//! The built-in `flow` job kind: submit a workflow (docs/workflows.md). A `[[cron]]` table with
//! `[[cron.step]]` tables fires one such job per tick instead of independent tasks.
//!
//! Payload: `{"name", "queue", "steps": [{"id", "kind", "payload", "after", "on_parent_failure",
//! "queue", "max_attempts", "timeout_ms", "priority"}], "batches": [{"steps", "on_complete",
//! "on_success", "on_failure"}]}` (`batches` only when there are some); exec steps carry their signed exec payload
//! (signed when the config was read, never by the node that submits: a `flow` job cannot get
//! a program approved that the secret's holder did not sign).
//!
//! The workflow id is derived from the job's id, which a cron tick makes deterministic
//! (`cron:<name>:<tick>:<n>`), so a tick submits its workflow at most once even when the
//! launcher job runs twice (a retry after a lost ack finds the workflow there and completes).
//! The job's result is the workflow id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tickq::{Batch, Client, Job, JobError, NewJob, ParentFailure, Step, Workflow};

/// The job kind's name.
pub const KIND: &str = "flow";

/// A workflow as a job payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowPayload {
    pub name: String,
    pub queue: String,
    pub steps: Vec<StepPayload>,
    /// Batches with named callbacks (`[[batch]]`), resolved by [`Workflow::batch`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<Batch>,
}

/// One step of a [`FlowPayload`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPayload {
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default)]
    pub on_parent_failure: ParentFailure,
    /// Its queue, when not the workflow's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl FlowPayload {
    /// The workflow, with `id` when given; checked ([`Workflow::validate`]).
    /// A schedule's workflow passes the schedule's name as `cron`: each step carries it (meta
    /// `cron`), so its exec steps verify against the schedule's signature (kinds/exec/sign.rs).
    pub fn to_workflow(&self, id: Option<String>, cron: Option<&str>) -> tickq::Result<Workflow> {
        let mut flow = Workflow::new(&self.queue, &self.name);
        if let Some(id) = id {
            flow = flow.id(id);
        }
        for s in &self.steps {
            let queue = s.queue.as_deref().unwrap_or(&self.queue);
            let mut job = NewJob::new(queue, &s.kind).payload(s.payload.clone());
            if let Some(name) = cron {
                job = job.meta("cron", name);
            }
            if let Some(n) = s.max_attempts {
                job = job.max_attempts(n);
            }
            if let Some(p) = s.priority {
                job = job.priority(p);
            }
            if let Some(ms) = s.timeout_ms {
                job = job.timeout(std::time::Duration::from_millis(ms));
            }
            flow = flow.step(
                Step::new(&s.id, job)
                    .after(s.after.iter().cloned())
                    .on_parent_failure(s.on_parent_failure),
            );
        }
        for b in &self.batches {
            flow = flow.batch(b.clone());
        }
        flow.validate()?;
        Ok(flow)
    }
}

/// The workflow id a launcher job submits: its own id, made a valid workflow id (letters,
/// digits, `-`, `_`, `.`; a long one is shortened with a hash of the whole, so ids stay
/// distinct).
pub fn flow_id_for(job_id: &str) -> String {
    let clean: String = job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 64 && clean == job_id.replace(':', "-") {
        return clean;
    }
    let digest = Sha256::digest(job_id.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let head: String = clean.chars().take(47).collect();
    format!("{head}-{hash}")
}

/// The start of the workflow ids schedule `name` fires (`flow_id_for` of its job ids
/// `cron:NAME:<tick>:<n>`, for a name that [`check_cron_name`] accepts).
pub fn cron_flow_prefix(name: &str) -> String {
    format!("cron-{name}-")
}

/// A schedule that fires a workflow needs a name that its workflow ids keep as it is.
pub fn check_cron_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 30
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a schedule with [[cron.step]] needs a name of at most 30 letters, digits, '-', '_' \
             or '.' (it names each tick's workflow); {name:?} is not"
        ))
    }
}

pub fn handler(client: Client) -> impl tickq::Handler {
    move |job: Job| {
        let client = client.clone();
        async move { run(&client, job).await }
    }
}

async fn run(client: &Client, job: Job) -> Result<Option<String>, JobError> {
    let payload: FlowPayload = job.payload_as()?;
    let flow = payload
        .to_workflow(Some(flow_id_for(job.id())), job.meta("cron"))
        .map_err(|e| JobError::kill(format!("the workflow does not validate: {e}")))?;
    let submitted = client
        .submit_flow(flow)
        .await
        .map_err(|e| JobError::retry(format!("could not submit the workflow: {e}")))?;
    Ok(Some(submitted.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_ids_are_valid_distinct_and_stable() {
        assert_eq!(
            flow_id_for("cron:nightly:1700000000000:0"),
            "cron-nightly-1700000000000-0"
        );
        for id in [
            "cron:a b:1:0",
            "cron:a/b:1:0",
            &format!("cron:{}:1:0", "x".repeat(120)),
        ] {
            let f = flow_id_for(id);
            assert!(tickq::validate_flow_id(&f).is_ok(), "{f}");
            assert_eq!(f, flow_id_for(id));
        }
        assert_ne!(flow_id_for("cron:a b:1:0"), flow_id_for("cron:a/b:1:0"));
        // A name check_cron_name accepts keeps its prefix for every tick.
        let name = "n".repeat(30);
        assert!(check_cron_name(&name).is_ok());
        assert!(check_cron_name(&"n".repeat(31)).is_err());
        assert!(check_cron_name("a b").is_err());
        let id = flow_id_for(&format!("cron:{name}:1764460800000:0"));
        assert!(id.starts_with(&cron_flow_prefix(&name)), "{id}");
    }
}
