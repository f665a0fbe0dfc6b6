//! The built-in `exec` job kind: run an allowed program with the job's arguments.
//!
//! Payload: `{"cmd": [PROGRAM, ARGS...], "env": {...}, "cwd": "...", "stdin": "..."}`.
//!
//! Security rules (DESIGN.md, Security):
//!
//! - exec is off unless the server's `[exec] allow` lists programs;
//! - `cmd[0]` must equal an entry of the list exactly, as a string: `sh` allows `sh` (looked
//!   up on the *server's* PATH) but not `/bin/sh`, and `/bin/sh` allows only `/bin/sh`. No
//!   normalisation, no globbing, no resolving of symlinks;
//! - the argv array goes to `execve` as is: there is no shell unless the allowed program is
//!   one, and allowing an interpreter (`sh`, `python3`) allows any code;
//! - the job's `env` cannot set PATH (it would choose a different binary for an allowed
//!   name), `LD_*`/`DYLD_*` (they would load code into an allowed binary) or `TICKQ_*` (the
//!   variables below are tickq's to set).
//!
//! The program sees `TICKQ_JOB_ID`, `TICKQ_QUEUE`, `TICKQ_ATTEMPT`, `TICKQ_FENCE`,
//! `TICKQ_NODE`, and when the job carries them, `TICKQ_SCHEDULED_AT` and `TICKQ_CRON`. It runs
//! in its own process group; when the job is stopped (lease lost, cancelled, forced shutdown)
//! or times out, the whole group gets SIGTERM and, after [`KILL_GRACE`], SIGKILL.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq::{Job, JobError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The job kind's name.
pub const KIND: &str = "exec";

/// How long a stopped program has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// How much of stdout and of stderr is kept (the last bytes).
const TAIL_BYTES: usize = 4096;

/// After the program exits, how long to wait for the rest of its output. A background process
/// it started can hold the pipes open forever; what came so far is enough then.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// The environment variables tickq sets; the job cannot set or inherit them.
const TICKQ_VARS: [&str; 7] = [
    "TICKQ_JOB_ID",
    "TICKQ_QUEUE",
    "TICKQ_ATTEMPT",
    "TICKQ_FENCE",
    "TICKQ_SCHEDULED_AT",
    "TICKQ_CRON",
    "TICKQ_NODE",
];

/// An exec job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecPayload {
    /// The program and its arguments.
    pub cmd: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Text written to the program's stdin (otherwise stdin is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

impl ExecPayload {
    /// Check the shape; the allow list is the server's to check.
    pub fn validate(&self) -> Result<(), String> {
        let Some(program) = self.cmd.first() else {
            return Err("cmd is empty: give [PROGRAM, ARGS...]".into());
        };
        if program.is_empty() {
            return Err("cmd[0] (the program) is empty".into());
        }
        if self.cmd.iter().any(|a| a.contains('\0')) {
            return Err("cmd contains a NUL byte".into());
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("env: {name:?} is not a variable name"));
            }
            if name == "PATH"
                || name.starts_with("LD_")
                || name.starts_with("DYLD_")
                || name.starts_with("TICKQ_")
            {
                return Err(format!(
                    "env: {name} cannot be set by a job (PATH, LD_*, DYLD_* and TICKQ_* are \
                     reserved)"
                ));
            }
        }
        if self.env.values().any(|v| v.contains('\0')) {
            return Err("env: a value contains a NUL byte".into());
        }
        if let Some(cwd) = &self.cwd
            && (cwd.is_empty() || cwd.contains('\0'))
        {
            return Err("cwd is empty or contains a NUL byte".into());
        }
        Ok(())
    }
}

struct Exec {
    allow: BTreeSet<String>,
    node: String,
}

/// The handler for kind `exec` on node `node`, allowed to run the programs in `allow`.
pub fn handler(allow: Vec<String>, node: String) -> impl tickq::Handler {
    let exec = Arc::new(Exec {
        allow: allow.into_iter().collect(),
        node,
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
        if self.allow.is_empty() {
            return Err(JobError::kill(format!(
                "exec is off on node {}: its config has no [exec] allow list; add {program:?} \
                 to allow it",
                self.node
            )));
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
        if let Some(at) = job.meta("scheduled_at") {
            cmd.env("TICKQ_SCHEDULED_AT", at);
        }
        if let Some(cron) = job.meta("cron") {
            cmd.env("TICKQ_CRON", cron);
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

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(75), _) => "exit status 75 (asked to retry)".to_owned(),
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Where the child's `execve` would find `program`, searching the server's PATH (never the
/// job's: the allow list names programs as the server sees them).
fn resolve(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Process groups of programs that were signalled but may still be running; the server kills
/// what is left when it exits (see [`kill_leftovers`]).
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// The process group of one running program. Dropped while the program runs (the job's
/// future was dropped on timeout), it sends SIGTERM and SIGKILL after [`KILL_GRACE`].
struct Group {
    pgid: i32,
    running: bool,
}

impl Group {
    fn new(pgid: i32) -> Group {
        LIVE.lock().expect("exec group registry").insert(pgid);
        Group {
            pgid,
            running: true,
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions. A negative pid names the group.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    /// The leader exited on its own. Anything it left running in the group keeps running: it
    /// may be meant to outlive the job.
    fn exited(&mut self) {
        self.running = false;
        LIVE.lock().expect("exec group registry").remove(&self.pgid);
    }

    /// SIGTERM, wait up to the grace for the leader, SIGKILL.
    async fn terminate(&mut self, child: &mut tokio::process::Child) {
        self.signal(libc::SIGTERM);
        let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
        self.signal(libc::SIGKILL);
        self.exited();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        self.signal(libc::SIGTERM);
        let pgid = self.pgid;
        // Drop cannot wait; a plain thread does not depend on the runtime being alive. tokio
        // reaps the dropped child itself.
        std::thread::spawn(move || {
            std::thread::sleep(KILL_GRACE);
            // SAFETY: as in `signal`.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            LIVE.lock().expect("exec group registry").remove(&pgid);
        });
    }
}

/// SIGKILL every program group still waiting for its grace to run out; called as the server
/// exits, so that no program outlives it.
pub fn kill_leftovers() {
    let groups = std::mem::take(&mut *LIVE.lock().expect("exec group registry"));
    for pgid in groups {
        // SAFETY: as in `Group::signal`.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// The last [`TAIL_BYTES`] of a pipe, read in the background.
struct Tail {
    buf: Arc<Mutex<Vec<u8>>>,
    task: Option<JoinHandle<()>>,
}

impl Tail {
    fn collect(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Tail {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let task = pipe.map(|mut pipe| {
            let buf = buf.clone();
            tokio::spawn(async move {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                    let mut buf = buf.lock().expect("tail buffer");
                    buf.extend_from_slice(&chunk[..n]);
                    // Trim in bulk, not on every read.
                    if buf.len() > 4 * TAIL_BYTES {
                        let cut = buf.len() - TAIL_BYTES;
                        buf.drain(..cut);
                    }
                }
            })
        });
        Tail { buf, task }
    }

    /// The tail as text (lossy UTF-8), trimmed of surrounding whitespace.
    async fn finish(mut self) -> String {
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(DRAIN_AFTER_EXIT, task).await.is_err() {
                abort.abort();
            }
        }
        let buf = self.buf.lock().expect("tail buffer");
        let start = buf.len().saturating_sub(TAIL_BYTES);
        String::from_utf8_lossy(&buf[start..]).trim().to_owned()
    }
}

/// Whether `program` exists on this node, as exec would look for it; used to warn about allow
/// entries that can never run here.
pub fn exists(program: &str) -> bool {
    resolve(program).is_some_and(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: serde_json::Value) -> Result<ExecPayload, String> {
        let p: ExecPayload = serde_json::from_value(json).map_err(|e| e.to_string())?;
        p.validate().map(|()| p)
    }

    #[test]
    fn payload_shape() {
        assert!(payload(serde_json::json!({"cmd": ["echo", "hi"]})).is_ok());
        assert!(
            payload(serde_json::json!({"cmd": []}))
                .unwrap_err()
                .contains("empty")
        );
        assert!(payload(serde_json::json!({"cmd": "echo hi"})).is_err());
        assert!(payload(serde_json::json!({"cmd": ["x"], "shell": true})).is_err());
        for var in ["PATH", "LD_PRELOAD", "TICKQ_JOB_ID", "A=B"] {
            let err = payload(serde_json::json!({"cmd": ["x"], "env": {var: "1"}})).unwrap_err();
            assert!(err.contains("env"), "{var}: {err}");
        }
    }

    #[test]
    fn programs_resolve_on_the_server_path() {
        assert!(resolve("sh").is_some());
        assert_eq!(resolve("/no/such"), Some(PathBuf::from("/no/such")));
        assert!(resolve("no-such-program-tickq").is_none());
    }
}
