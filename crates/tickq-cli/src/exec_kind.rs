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
//!   variables below are tickq's to set);
//! - with a shared secret (see below), only signed payloads run.
//!
//! # Signing
//!
//! A server with a secret (`[exec] secret` or `TICKQ_EXEC_SECRET`, at least 16 bytes) runs only
//! exec jobs whose payload carries `"sig": HEX`, the lowercase hex HMAC-SHA256 under the secret
//! of [`signed_bytes`]: the text `tickq-exec-v2` and a newline, then the compact JSON
//! `{"queue":...,"job":...,"cmd":[...],"env":{...},"cwd":...,"stdin":...}` (always these six
//! keys in this order, env keys sorted, `null` for a missing cwd or stdin, serde_json's
//! escaping). `job` is `id:` and the job id, or for the jobs of a schedule, `cron:` and the
//! schedule's name ([`Binding`]). An unsigned job is killed with "exec job is not signed with
//! this server's secret", a wrong one with "signature does not match"; the program does not
//! run. Signatures are compared in constant time.
//!
//! The signature binds the queue and the job as well as the command, env, cwd and stdin, so a
//! signed job copied into another job id or another queue does not run. A schedule's jobs get
//! new ids every tick, so theirs binds the schedule instead: a job whose id is
//! `cron:NAME:...` and whose `cron` meta is NAME. Whoever can write to Redis can therefore
//! run a schedule's approved command in its queue at another time (as `tickq cron trigger`
//! does), but not a one-off job's command again, and no command anywhere else. Rotating the
//! secret invalidates every signature made with the old one, including those of stored `cron
//! add` schedules.
//!
//! tickq signs what it creates when its config has the secret: `tickq exec`, `tickq enqueue
//! QUEUE exec` (it re-signs, replacing any `sig` given), `tickq cron add --exec` and the
//! `[[cron]]` exec tasks a server stores. A server without a secret ignores `sig`.
//!
//! The program sees `TICKQ_JOB_ID`, `TICKQ_QUEUE`, `TICKQ_ATTEMPT`, `TICKQ_FENCE`,
//! `TICKQ_NODE`, `TICKQ_SCHEDULED_AT` (see [`scheduled_at`]), and for a cron job `TICKQ_CRON`. A workflow
//! step also sees `TICKQ_FLOW_ID`, `TICKQ_STEP` and `TICKQ_PARENTS_FILE`: a JSON file (removed
//! when the program ends) mapping each parent step to its result (its stdout), or null. It runs
//! in its own process group; when the job is stopped (lease lost, cancelled, forced shutdown)
//! or times out, the whole group gets SIGTERM and, after [`KILL_GRACE`], SIGKILL.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
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
    /// The signature (see the module docs); not part of what is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The exec signing secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The environment variable that gives the secret (it wins over `[exec] secret`).
pub const SECRET_ENV: &str = "TICKQ_EXEC_SECRET";

impl Secret {
    /// A secret from its text, at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(text: &str) -> Result<Secret, String> {
        if text.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the exec secret is {} bytes long; use at least {MIN_SECRET_LEN}",
                text.len()
            ));
        }
        Ok(Secret(text.as_bytes().into()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a signature is bound to besides the payload: the queue, and the job id or (for a
/// schedule's jobs, whose ids change every tick) the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    queue: String,
    job: String,
}

impl Binding {
    /// A one-off job: its queue and id.
    pub fn job(queue: &str, id: &str) -> Binding {
        Binding {
            queue: queue.to_owned(),
            job: format!("id:{id}"),
        }
    }

    /// Every job of schedule `name` (ids `cron:NAME:...`, meta `cron` = NAME) in `queue`, and
    /// the steps of the workflows it fires (ids `flow:cron-NAME-...`, meta `cron` = NAME).
    pub fn schedule(queue: &str, name: &str) -> Binding {
        Binding {
            queue: queue.to_owned(),
            job: format!("cron:{name}"),
        }
    }

    /// What a job read from Redis claims to be.
    pub fn of(job: &Job) -> Binding {
        Binding::claimed(job.queue(), job.id(), job.meta("cron"))
    }

    /// A job with this queue, id and `cron` meta: a schedule's only when its id is one the
    /// scheduler makes for that schedule.
    fn claimed(queue: &str, id: &str, cron: Option<&str>) -> Binding {
        match cron {
            Some(name)
                if id.starts_with(&format!("cron:{name}:"))
                    || id.starts_with(&format!(
                        "flow:{}",
                        crate::flow_kind::cron_flow_prefix(name)
                    )) =>
            {
                Binding::schedule(queue, name)
            }
            _ => Binding::job(queue, id),
        }
    }
}

/// What a signature covers: the binding and the payload without `sig`, in a fixed order and
/// form.
#[derive(Serialize)]
struct Canonical<'a> {
    queue: &'a str,
    job: &'a str,
    cmd: &'a [String],
    env: &'a BTreeMap<String, String>,
    cwd: Option<&'a str>,
    stdin: Option<&'a str>,
}

/// Domain separation and version of the signed bytes (v1 bound no queue or job).
const SIGNED_PREFIX: &[u8] = b"tickq-exec-v2\n";

/// The bytes an exec payload's signature is the HMAC of (see the module docs).
pub fn signed_bytes(payload: &ExecPayload, binding: &Binding) -> Vec<u8> {
    let mut bytes = SIGNED_PREFIX.to_vec();
    serde_json::to_writer(
        &mut bytes,
        &Canonical {
            queue: &binding.queue,
            job: &binding.job,
            cmd: &payload.cmd,
            env: &payload.env,
            cwd: payload.cwd.as_deref(),
            stdin: payload.stdin.as_deref(),
        },
    )
    .expect("strings serialise");
    bytes
}

impl ExecPayload {
    /// Set `sig` for `secret`, bound to `binding`.
    pub fn sign(&mut self, secret: &Secret, binding: &Binding) {
        let mut mac = secret.mac();
        mac.update(&signed_bytes(self, binding));
        let tag = mac.finalize().into_bytes();
        self.sig = Some(tag.iter().map(|b| format!("{b:02x}")).collect());
    }

    /// Whether `sig` is this payload's signature under `secret` for `binding`; the error is
    /// the reason.
    pub fn verify(&self, secret: &Secret, binding: &Binding) -> Result<(), String> {
        let Some(sig) = &self.sig else {
            return Err(
                "exec job is not signed with this server's secret (it has no sig); \
                        enqueue it with a tickq whose config has the same [exec] secret"
                    .into(),
            );
        };
        let mismatch = || {
            "signature does not match: the payload was changed after signing, signed with \
             another secret, or signed for another job id or queue (a signed job cannot be \
             replayed under another)"
                .to_owned()
        };
        let tag = decode_hex(sig).ok_or_else(mismatch)?;
        let mut mac = secret.mac();
        mac.update(&signed_bytes(self, binding));
        // verify_slice compares in constant time.
        mac.verify_slice(&tag).map_err(|_| mismatch())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = text.get(i..i + 2)?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
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

    fn secret() -> Secret {
        Secret::new("0123456789abcdef").unwrap()
    }

    fn bound() -> Binding {
        Binding::job("q", "j1")
    }

    #[test]
    fn signed_bytes_are_canonical() {
        // Field order of the input, a missing vs empty env, and sig do not matter.
        let a = payload(serde_json::json!({
            "stdin": "é\u{1}",
            "env": {"B": "2", "A": "1"},
            "cmd": ["sh", "-c", "echo \"hi\"\n\\/"],
            "sig": "ignored",
        }))
        .unwrap();
        let b = payload(serde_json::json!({
            "cmd": ["sh", "-c", "echo \"hi\"\n\\/"],
            "env": {"A": "1", "B": "2"},
            "stdin": "é\u{1}",
        }))
        .unwrap();
        let expected = "tickq-exec-v2\n{\"queue\":\"q\",\"job\":\"id:j1\",\
                        \"cmd\":[\"sh\",\"-c\",\"echo \\\"hi\\\"\\n\\\\/\"],\
                        \"env\":{\"A\":\"1\",\"B\":\"2\"},\"cwd\":null,\"stdin\":\"é\\u0001\"}";
        assert_eq!(
            String::from_utf8(signed_bytes(&a, &bound())).unwrap(),
            expected
        );
        assert_eq!(signed_bytes(&a, &bound()), signed_bytes(&b, &bound()));

        let bare = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        let empty_env = payload(serde_json::json!({"cmd": ["true"], "env": {}})).unwrap();
        assert_eq!(
            signed_bytes(&bare, &Binding::schedule("reports", "nightly")),
            b"tickq-exec-v2\n{\"queue\":\"reports\",\"job\":\"cron:nightly\",\"cmd\":[\"true\"],\
              \"env\":{},\"cwd\":null,\"stdin\":null}"
        );
        assert_eq!(
            signed_bytes(&bare, &bound()),
            signed_bytes(&empty_env, &bound())
        );
        // A missing cwd and an empty-string stdin differ.
        let empty_stdin = payload(serde_json::json!({"cmd": ["true"], "stdin": ""})).unwrap();
        assert_ne!(
            signed_bytes(&bare, &bound()),
            signed_bytes(&empty_stdin, &bound())
        );
    }

    #[test]
    fn sign_and_verify() {
        let mut p = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        assert!(
            p.verify(&secret(), &bound())
                .unwrap_err()
                .contains("not signed")
        );
        p.sign(&secret(), &bound());
        // Known answer: HMAC-SHA256("0123456789abcdef", signed bytes), as Python computes it.
        assert_eq!(
            p.sig.as_deref(),
            Some("931ec2229d813bc9ad35e8a1ad0a9fb45189078fc334bfbaccd550df46858cf4")
        );
        p.verify(&secret(), &bound()).unwrap();
        // The sig survives the JSON round trip a job makes.
        let back: ExecPayload = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        back.verify(&secret(), &bound()).unwrap();

        let other = Secret::new("another secret, 16+").unwrap();
        assert!(
            p.verify(&other, &bound())
                .unwrap_err()
                .contains("does not match")
        );
        for change in [
            |p: &mut ExecPayload| p.cmd.push("x".into()),
            |p: &mut ExecPayload| drop(p.env.insert("A".into(), "1".into())),
            |p: &mut ExecPayload| p.cwd = Some("/".into()),
            |p: &mut ExecPayload| p.stdin = Some(String::new()),
            |p: &mut ExecPayload| p.sig = Some("zz".repeat(32)),
            |p: &mut ExecPayload| p.sig = Some("00".into()),
        ] {
            let mut q = p.clone();
            change(&mut q);
            assert!(
                q.verify(&secret(), &bound())
                    .unwrap_err()
                    .contains("does not match")
            );
        }
    }

    #[test]
    fn a_signature_binds_the_queue_and_the_job() {
        let mut p = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        p.sign(&secret(), &Binding::job("q", "j1"));
        for replay in [
            Binding::job("q", "j2"),
            Binding::job("other", "j1"),
            Binding::schedule("q", "j1"),
        ] {
            let err = p.verify(&secret(), &replay).unwrap_err();
            assert!(err.contains("another job id or queue"), "{replay:?}: {err}");
        }
        // A schedule's signature holds for each of its ticks' jobs, and only in its queue.
        let mut nightly = payload(serde_json::json!({"cmd": ["true"]})).unwrap();
        nightly.sign(&secret(), &Binding::schedule("reports", "nightly"));
        for (queue, id, cron, ok) in [
            (
                "reports",
                "cron:nightly:1790000000000:0",
                Some("nightly"),
                true,
            ),
            ("reports", "cron:nightly:manual-17:1", Some("nightly"), true),
            (
                "other",
                "cron:nightly:1790000000000:0",
                Some("nightly"),
                false,
            ),
            // The meta alone does not make a job the schedule's, nor the id alone.
            ("reports", "j1", Some("nightly"), false),
            ("reports", "cron:nightly:1:0", None, false),
            ("reports", "cron:nightly-2:1:0", Some("nightly-2"), false),
        ] {
            let binding = Binding::claimed(queue, id, cron);
            assert_eq!(
                nightly.verify(&secret(), &binding).is_ok(),
                ok,
                "{queue} {id} {cron:?}"
            );
        }
    }

    #[test]
    fn secrets_are_long_and_hidden() {
        assert!(Secret::new("short").unwrap_err().contains("at least 16"));
        assert_eq!(format!("{:?}", secret()), "Secret(***)");
    }

    #[test]
    fn programs_resolve_on_the_server_path() {
        assert!(resolve("sh").is_some());
        assert_eq!(resolve("/no/such"), Some(PathBuf::from("/no/such")));
        assert!(resolve("no-such-program-tickq").is_none());
    }
}
