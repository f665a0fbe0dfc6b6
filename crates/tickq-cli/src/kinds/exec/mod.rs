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
//!
//! [`sign`] says what a signature covers; [`run`] starts the program and [`process`] watches
//! it.
//!
//! The program sees `TICKQ_JOB_ID`, `TICKQ_QUEUE`, `TICKQ_ATTEMPT`, `TICKQ_FENCE`,
//! `TICKQ_NODE`, `TICKQ_SCHEDULED_AT` (see [`scheduled_at`]), and for a cron job `TICKQ_CRON`. A workflow
//! step also sees `TICKQ_FLOW_ID`, `TICKQ_STEP` and `TICKQ_PARENTS_FILE`: a JSON file (removed
//! when the program ends) mapping each parent step to its result (its stdout), or null. It runs
//! in its own process group; when the job is stopped (lease lost, cancelled, forced shutdown)
//! or times out, the whole group gets SIGTERM and, after [`KILL_GRACE`], SIGKILL.

mod process;
mod run;
mod sign;

pub use process::{KILL_GRACE, kill_leftovers};
pub use run::handler;
pub use sign::{Binding, SECRET_ENV, Secret};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The job kind's name.
pub const KIND: &str = "exec";

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
}
