//! `tickq flow run FILE`: the workflow TOML file (INTERFACE.md, "More commands";
//! docs/workflows.md), checked into a [`tickq::Workflow`] without I/O.

use super::usage;
use crate::kinds::exec::{Binding, ExecPayload, Secret};
use crate::kinds::flow::{FlowPayload, StepPayload};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use tickq::units as parse;
use tickq::{Batch, ParentFailure, Workflow};

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
    #[serde(default)]
    batch: Vec<Batch>,
}

fn default_queue() -> String {
    "default".to_owned()
}

/// One `[[step]]` of a workflow file, or `[[cron.step]]` of a schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepFile {
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

/// The steps as a `flow` job payload, checked the way a submit checks them. With `sign`
/// (a secret and the workflow id), exec steps are signed for their step jobs
/// (`flow:<id>:<step>` in `queue`). `source` names the file or schedule in messages.
pub(super) fn flow_payload(
    name: &str,
    queue: &str,
    steps: Vec<StepFile>,
    batches: Vec<Batch>,
    source: &str,
    sign: Option<(&Secret, &str)>,
) -> anyhow::Result<FlowPayload> {
    let mut out = FlowPayload {
        name: name.to_owned(),
        queue: queue.to_owned(),
        steps: Vec::new(),
        batches,
    };
    for step in steps {
        let at = |what: String| usage(format!("{source}, step {:?}: {what}", step.id));
        // A step in another queue than the workflow's (docs/workflows.md, "Steps in other
        // queues"); its exec signature binds it to that queue.
        let step_queue = step.queue.as_deref().unwrap_or(queue);
        tickq::validate_queue_name(step_queue).map_err(|e| at(e.message().to_owned()))?;
        let (kind, payload) = match (&step.cmd, &step.kind) {
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
                if let Some((secret, id)) = sign {
                    let job = tickq::step_job_id(id, &step.id);
                    exec.sign(secret, &Binding::job(step_queue, &job));
                }
                let payload = serde_json::to_value(&exec).expect("an exec payload serialises");
                (crate::kinds::exec::KIND.to_owned(), payload)
            }
            (None, Some(kind)) => {
                if !step.env.is_empty() || step.cwd.is_some() {
                    return Err(at("env and cwd belong to exec steps (cmd)".into()));
                }
                (
                    kind.clone(),
                    step.payload.clone().unwrap_or(serde_json::Value::Null),
                )
            }
            _ => return Err(at("give either cmd = [PROGRAM, ARGS...] or kind".into())),
        };
        let timeout_ms = match &step.timeout {
            None => None,
            Some(t) => Some(
                parse::duration(t)
                    .map_err(|e| at(format!("timeout: {e}")))?
                    .as_millis() as u64,
            ),
        };
        let on_parent_failure: ParentFailure = match &step.on_parent_failure {
            None => ParentFailure::Cancel,
            Some(p) => p
                .parse()
                .map_err(|e: tickq::Error| at(e.message().to_owned()))?,
        };
        out.steps.push(StepPayload {
            queue: (step_queue != queue).then(|| step_queue.to_owned()),
            id: step.id.clone(),
            kind,
            payload,
            after: step.after.clone(),
            on_parent_failure,
            max_attempts: step.max_attempts,
            timeout_ms,
            priority: step.priority,
        });
    }
    out.to_workflow(None, None)
        .map_err(|e| usage(format!("{source}: {}", e.message())))?;
    Ok(out)
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
    // The id is fixed here, not at submit: exec steps are signed for their job ids.
    let id = id
        .or(file.id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    tickq::validate_flow_id(&id).map_err(|e| usage(format!("workflow {source}: {e}")))?;
    let payload = flow_payload(
        &file.name,
        &file.queue,
        file.step,
        file.batch,
        &format!("workflow {source}"),
        secret.map(|s| (s, id.as_str())),
    )?;
    payload
        .to_workflow(Some(id), None)
        .map_err(|e| usage(format!("workflow {source}: {}", e.message())))
}

/// A `[[cron]]` table's `flow = "FILE"`: the file's workflow as the `flow` job payload each
/// tick submits, checked like `tickq flow run FILE`. `cron_queue` is the table's `queue`, which
/// must then be the file's. Exec steps are signed later, with the schedule's other tasks.
pub(super) fn cron_flow_file(path: &Path, cron_queue: Option<&str>) -> Result<FlowPayload, String> {
    let source = format!("workflow file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {source}: {e}"))?;
    let file: FlowFile = toml::from_str(&text).map_err(|e| format!("{source}: {e}"))?;
    if let Some(id) = &file.id {
        return Err(format!(
            "{source}: id = {id:?}: a schedule's workflow takes its id from each tick; remove it"
        ));
    }
    if let Some(q) = cron_queue
        && q != file.queue
    {
        return Err(format!(
            "queue {q:?}, but {source} runs in queue {:?}; leave queue out of the [[cron]] \
             table or make them the same",
            file.queue
        ));
    }
    flow_payload(
        &file.name,
        &file.queue,
        file.step,
        file.batch,
        &source,
        None,
    )
    .map_err(|e| e.to_string())
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
            err("name = \"n\"\n[[step]]\nid = \"a\"\nkind = \"k\"\nqueue = \"a b\"\n")
                .contains("invalid queue name")
        );
        assert!(
            err("name = \"n\"\n[[step]]\nid = \"a\"\nkind = \"k\"\nbogus = 1\n").contains("bogus")
        );
    }

    #[test]
    fn a_file_with_a_batch_gets_its_callbacks() {
        let text = r#"
            name = "parts"
            [[step]]
            id = "part1"
            kind = "export"
            [[step]]
            id = "part2"
            kind = "export"
            [[step]]
            id = "report"
            kind = "report"
            [[step]]
            id = "alert"
            kind = "alert"
            [[batch]]
            steps = ["part1", "part2"]
            on_success = "report"
            on_failure = "alert"
        "#;
        let flow = parse_flow(text, "f.toml", None, None).unwrap();
        assert!(flow.validate().is_ok());
        let bad = text.replace("on_failure = \"alert\"", "on_failure = \"nope\"");
        let e = err(&bad);
        assert!(e.contains("f.toml") && e.contains("\"nope\""), "{e}");
        let bad = text.replace("on_failure", "on_fail");
        assert!(err(&bad).contains("on_fail"));
    }

    /// A `[[cron]]` table with `flow = FILE`, the file `FILE` next to the config holding
    /// `workflow`, as the server's config load reads it.
    fn cron_with_file(
        table: &str,
        workflow: &str,
    ) -> Result<crate::config::cron::CronSpec, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nightly.toml"), workflow).unwrap();
        let text = format!("name = \"nightly\"\nschedule = \"*/2 * * * * *\"\n{table}");
        let c: super::super::file::CronFile = toml::from_str(&text).map_err(|e| e.to_string())?;
        crate::config::cron::cron_spec(c, Some(dir.path()))
    }

    const NIGHTLY: &str = r#"
        name = "nightly-report"
        queue = "nightly"
        [[step]]
        id = "part1"
        cmd = ["/bin/echo", "1"]
        [[step]]
        id = "part2"
        cmd = ["/bin/echo", "2"]
        [[step]]
        id = "report"
        kind = "report"
        [[batch]]
        steps = ["part1", "part2"]
        on_complete = "report"
    "#;

    #[test]
    fn a_cron_table_reads_its_workflow_file_once_at_load() {
        let spec = cron_with_file("flow = \"nightly.toml\"", NIGHTLY).unwrap();
        assert_eq!(spec.queue, "nightly", "the file's queue");
        let json = serde_json::to_value(&spec).unwrap();
        let task = &json["tasks"][0];
        assert_eq!(task["kind"], "flow", "{json}");
        assert_eq!(task["name"], "nightly-report");
        assert_eq!(task["steps"].as_array().unwrap().len(), 3);
        assert_eq!(task["steps"][0]["kind"], "exec");
        assert_eq!(task["batches"][0]["on_complete"], "report");
        // The same queue given in the table is fine.
        assert!(cron_with_file("flow = \"nightly.toml\"\nqueue = \"nightly\"", NIGHTLY).is_ok());
    }

    #[test]
    fn a_bad_workflow_file_is_a_config_error_naming_it() {
        let flow = "flow = \"nightly.toml\"";
        for (table, workflow, needles) in [
            (
                "flow = \"missing.toml\"",
                NIGHTLY,
                &["cannot read workflow file", "missing.toml"][..],
            ),
            (
                flow,
                &NIGHTLY.replace("steps = [\"part1\", \"part2\"]", "steps = [\"part9\"]"),
                &["nightly.toml", "\"part9\" is not a step"],
            ),
            (
                flow,
                &NIGHTLY.replace("cmd = [\"/bin/echo\", \"1\"]", "kind = 1"),
                &["nightly.toml", "invalid type"],
            ),
            (
                flow,
                &format!("id = \"fixed\"\n{NIGHTLY}"),
                &["nightly.toml", "takes its id from each tick"],
            ),
            (
                "flow = \"nightly.toml\"\nqueue = \"other\"",
                NIGHTLY,
                &["queue \"other\"", "nightly.toml runs in queue \"nightly\""],
            ),
            (
                "flow = \"nightly.toml\"\ntasks = [ { kind = \"mail\" } ]",
                NIGHTLY,
                &["give one of"],
            ),
        ] {
            let e = cron_with_file(table, workflow).unwrap_err();
            for needle in needles {
                assert!(e.contains(needle), "{table}: {e}");
            }
        }
    }
}
