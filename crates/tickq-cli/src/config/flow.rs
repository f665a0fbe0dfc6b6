//! `tickq flow run FILE`: the workflow TOML file (INTERFACE.md, "More commands";
//! docs/workflows.md), checked into a [`tickq::Workflow`] without I/O.

use super::usage;
use crate::exec_kind::{ExecPayload, Secret};
use serde::Deserialize;
use std::collections::BTreeMap;
use tickq::units as parse;
use tickq::{NewJob, ParentFailure, Step, Workflow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    name: String,
    #[serde(default = "default_queue")]
    queue: String,
    /// A fixed id: running the file again then creates nothing.
    id: Option<String>,
    #[serde(default)]
    step: Vec<StepFile>,
}

fn default_queue() -> String {
    "default".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    /// An exec step: the program and its arguments.
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    /// Or a job of this kind with this payload.
    kind: Option<String>,
    payload: Option<serde_json::Value>,
    #[serde(default)]
    after: Vec<String>,
    on_parent_failure: Option<String>,
    queue: Option<String>,
    max_attempts: Option<u32>,
    timeout: Option<String>,
    priority: Option<i32>,
}

/// The workflow the file `source` (for messages) describes; exec steps are signed with
/// `secret` when there is one. `id` (from `--id`) overrides the file's.
pub(super) fn parse_flow(
    text: &str,
    source: &str,
    secret: Option<&Secret>,
    id: Option<String>,
) -> anyhow::Result<Workflow> {
    let file: FlowFile =
        toml::from_str(text).map_err(|e| usage(format!("workflow {source}: {e}")))?;
    let mut flow = Workflow::new(&file.queue, &file.name);
    if let Some(id) = id.or(file.id) {
        flow = flow.id(id);
    }
    for step in file.step {
        let at = |what: String| usage(format!("workflow {source}, step {:?}: {what}", step.id));
        let queue = step.queue.clone().unwrap_or_else(|| file.queue.clone());
        let mut job = match (&step.cmd, &step.kind) {
            (Some(cmd), None) => {
                if step.payload.is_some() {
                    return Err(at("an exec step (cmd) takes no payload".into()));
                }
                let mut exec = ExecPayload {
                    cmd: cmd.clone(),
                    env: step.env.clone(),
                    cwd: step.cwd.clone(),
                    stdin: None,
                    sig: None,
                };
                exec.validate().map_err(at)?;
                if let Some(secret) = secret {
                    exec.sign(secret);
                }
                let payload = serde_json::to_value(&exec).expect("an exec payload serialises");
                NewJob::new(queue, crate::exec_kind::KIND).payload(payload)
            }
            (None, Some(kind)) => {
                if !step.env.is_empty() || step.cwd.is_some() {
                    return Err(at("env and cwd belong to exec steps (cmd)".into()));
                }
                NewJob::new(queue, kind)
                    .payload(step.payload.clone().unwrap_or(serde_json::Value::Null))
            }
            _ => return Err(at("give either cmd = [PROGRAM, ARGS...] or kind".into())),
        };
        if let Some(n) = step.max_attempts {
            job = job.max_attempts(n);
        }
        if let Some(p) = step.priority {
            job = job.priority(p);
        }
        if let Some(t) = &step.timeout {
            job = job.timeout(parse::duration(t).map_err(|e| at(format!("timeout: {e}")))?);
        }
        let policy: ParentFailure = match &step.on_parent_failure {
            None => ParentFailure::Cancel,
            Some(p) => p
                .parse()
                .map_err(|e: tickq::Error| at(e.message().to_owned()))?,
        };
        flow = flow.step(
            Step::new(&step.id, job)
                .after(step.after.iter().cloned())
                .on_parent_failure(policy),
        );
    }
    flow.validate()
        .map_err(|e| usage(format!("workflow {source}: {}", e.message())))?;
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_flow(text, "f.toml", None, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_file_becomes_a_workflow() {
        let text = r#"
            name = "nightly-report"
            queue = "nightly"
            [[step]]
            id = "part1"
            cmd = ["/bin/echo", "1"]
            [[step]]
            id = "report"
            kind = "report"
            payload = {day = "today"}
            after = ["part1"]
            on_parent_failure = "run"
            max_attempts = 2
            timeout = "5m"
        "#;
        let flow = parse_flow(text, "f.toml", None, Some("n-1".into())).unwrap();
        assert!(flow.validate().is_ok());
        let debug = format!("{flow:?}");
        assert!(debug.contains("n-1") && debug.contains("Run"), "{debug}");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(err("name = 1").contains("f.toml"));
        assert!(err("name = \"n\"\n[[step]]\nid = \"a\"\n").contains("either cmd"));
        assert!(
            err("name = \"n\"\n[[step]]\nid = \"a\"\nkind = \"k\"\non_parent_failure = \"x\"\n")
                .contains("on_parent_failure")
        );
        assert!(
            err("name = \"n\"\n[[step]]\nid = \"a\"\nkind = \"k\"\nafter = [\"zz\"]\n")
                .contains("not a step")
        );
        assert!(
            err("name = \"n\"\n[[step]]\nid = \"a\"\nkind = \"k\"\nqueue = \"other\"\n")
                .contains("workflow's queue")
        );
        assert!(
            err("name = \"n\"\n[[step]]\nid = \"a\"\nkind = \"k\"\nbogus = 1\n").contains("bogus")
        );
    }
}
