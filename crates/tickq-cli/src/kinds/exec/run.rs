//! Running one exec job: checks, the environment, the program's process group, its output.

use super::process::{Group, Tail, describe, resolve};
use super::{Binding, ExecPayload, Secret};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tickq::{Job, JobError};
use tokio::io::AsyncWriteExt;

/// The environment variables tickq sets; the job cannot set or inherit them.
const TICKQ_VARS: [&str; 10] = [
    "TICKQ_JOB_ID",
    "TICKQ_QUEUE",
    "TICKQ_ATTEMPT",
    "TICKQ_FENCE",
    "TICKQ_SCHEDULED_AT",
    "TICKQ_CRON",
    "TICKQ_NODE",
    "TICKQ_FLOW_ID",
    "TICKQ_STEP",
    "TICKQ_PARENTS_FILE",
];

/// A workflow step's parents' results, in a file that goes when the step's program ends.
struct ParentsFile(PathBuf);

impl ParentsFile {
    /// Write the results of `job`'s parents; `None` for a job with no parents.
    async fn write(job: &Job) -> Result<Option<ParentsFile>, JobError> {
        if job.parents().is_empty() {
            return Ok(None);
        }
        let results = job
            .parent_results()
            .await
            .map_err(|e| JobError::retry(format!("could not read the parents' results: {e}")))?;
        let text = serde_json::to_string(&results).expect("a map of strings serialises");
        // The job id and fence make the name unique among the attempts on this node.
        let name = format!(
            "tickq-parents-{}-{}.json",
            job.id()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
            job.fence()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text)
            .map_err(|e| JobError::retry(format!("could not write {}: {e}", path.display())))?;
        Ok(Some(ParentsFile(path)))
    }
}

impl Drop for ParentsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Exec {
    allow: BTreeSet<String>,
    node: String,
    secret: Option<Secret>,
}

/// The handler for kind `exec` on node `node`, allowed to run the programs in `allow`; with
/// `secret`, only signed payloads run.
pub fn handler(allow: Vec<String>, node: String, secret: Option<Secret>) -> impl tickq::Handler {
    let exec = Arc::new(Exec {
        allow: allow.into_iter().collect(),
        node,
        secret,
    });
    move |job: Job| {
        let exec = exec.clone();
        async move { exec.run(job).await }
    }
}

impl Exec {
    async fn run(&self, job: Job) -> Result<Option<String>, JobError> {
        let payload: ExecPayload = job.payload_as()?;
        payload
            .validate()
            .map_err(|e| JobError::kill(format!("invalid exec payload: {e}")))?;
        let program = &payload.cmd[0];
        // Before the signature: on a node that runs no exec job at all, "not signed" would send
        // the operator after the secret when the allow list is what is missing.
        if self.allow.is_empty() {
            return Err(JobError::kill(format!(
                "exec is off on node {}: its config has no [exec] allow list; add {program:?} \
                 to allow it",
                self.node
            )));
        }
        if let Some(secret) = &self.secret {
            payload
                .verify(secret, &Binding::of(&job))
                .map_err(JobError::kill)?;
        }
        if !self.allow.contains(program) {
            return Err(JobError::kill(format!(
                "program {program:?} is not on the [exec] allow list of node {} (entries are \
                 matched exactly as written)",
                self.node
            )));
        }
        let path = resolve(program).ok_or_else(|| {
            JobError::kill(format!(
                "program {program:?} was not found on the PATH of node {}",
                self.node
            ))
        })?;

        let mut cmd = tokio::process::Command::new(&path);
        cmd.arg0(program)
            .args(&payload.cmd[1..])
            .stdin(if payload.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for var in TICKQ_VARS {
            cmd.env_remove(var);
        }
        cmd.envs(&payload.env)
            .env("TICKQ_JOB_ID", job.id())
            .env("TICKQ_QUEUE", job.queue())
            .env("TICKQ_ATTEMPT", job.attempt().to_string())
            .env("TICKQ_FENCE", job.fence().to_string())
            .env("TICKQ_NODE", &self.node);
        if let Some(at) = scheduled_at(&job) {
            cmd.env("TICKQ_SCHEDULED_AT", at);
        }
        if let Some(cron) = job.meta("cron") {
            cmd.env("TICKQ_CRON", cron);
        }
        if let (Some(flow), Some(step)) = (job.flow_id(), job.step()) {
            cmd.env("TICKQ_FLOW_ID", flow).env("TICKQ_STEP", step);
        }
        // Held until this call returns, which is after the program ended.
        let parents_file = ParentsFile::write(&job).await?;
        if let Some(file) = &parents_file {
            cmd.env("TICKQ_PARENTS_FILE", &file.0);
        }
        if let Some(cwd) = &payload.cwd {
            cmd.current_dir(cwd);
        }
        // A server killed with -9 takes the program with it: the job's lease then expires and
        // it runs elsewhere, and two copies must not run at once.
        crate::child::die_with_parent(&mut cmd, libc::SIGKILL);

        let mut child = cmd.spawn().map_err(|e| {
            let message = format!("could not start {program:?}: {e}");
            match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    JobError::kill(message)
                }
                _ => JobError::retry(message),
            }
        })?;
        // From here on, dropping this future (timeout, or the stop grace running out) must not
        // leave the program running: the guard signals the group on drop.
        let mut group = Group::new(child.id().expect("a just-spawned child has a pid") as i32);

        if let (Some(text), Some(mut stdin)) = (payload.stdin, child.stdin.take()) {
            // A program that does not read its stdin closes the pipe: not an error.
            tokio::spawn(async move {
                let _ = stdin.write_all(text.as_bytes()).await;
            });
        }
        let stdout = Tail::collect(child.stdout.take());
        let stderr = Tail::collect(child.stderr.take());

        let status = tokio::select! {
            status = child.wait() => status,
            _ = job.stopped() => {
                // The worker ignores what a stopped job answers; this only ends the program.
                group.terminate(&mut child).await;
                return Err(JobError::retry("stopped"));
            }
        };
        group.exited();
        let status =
            status.map_err(|e| JobError::retry(format!("waiting for {program:?}: {e}")))?;
        let (stdout, stderr) = (stdout.finish().await, stderr.finish().await);
        if status.success() {
            return Ok((!stdout.is_empty()).then_some(stdout));
        }
        let stderr = if stderr.is_empty() {
            "(no stderr output)".to_owned()
        } else {
            format!("stderr: {stderr}")
        };
        Err(JobError::retry(format!("{}; {stderr}", describe(status))))
    }
}

/// `TICKQ_SCHEDULED_AT` (Unix ms): when this attempt was due. A cron job's is its tick's
/// nominal instant (so every attempt of a tick sees the same value); any other job's is its
/// due time: the end of its delay (`--in`, `--at`), the end of its backoff for a retry, or its
/// enqueue time for a job that was due at once.
fn scheduled_at(job: &tickq::Job) -> Option<String> {
    job.meta("scheduled_at")
        .map(str::to_owned)
        .or_else(|| job.due_at().map(|t| t.as_millisecond().to_string()))
}
