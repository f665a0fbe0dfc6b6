//! Running the built binary and waiting for outcomes.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tickq");

/// `tickq` with an environment that cannot leak in from the developer's shell.
pub fn tickq() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "TICKQ_REDIS_URL",
        "TICKQ_DEFAULT_REDIS_PORT",
        "RUST_LOG",
        "TICKQ_EXEC_SECRET",
        "TICKQ_REDIS_CA",
        "TICKQ_REDIS_CERT",
        "TICKQ_REDIS_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }

    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let run = self.ok();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {run:?}"))
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(self.code, code, "expected exit {code}: {self:?}");
        assert!(
            self.stderr.contains(needle),
            "stderr should mention {needle:?}: {self:?}"
        );
        assert!(
            self.stdout.is_empty(),
            "nothing on stdout on failure: {self:?}"
        );
        self
    }
}

/// Run `tickq ARGS` against `url` (none: no --redis flag).
pub fn run(url: Option<&str>, args: &[&str]) -> Run {
    run_env(url, args, &[])
}

/// [`run`] with more environment variables.
pub fn run_env(url: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tickq();
    if let Some(url) = url {
        cmd.args(["--redis", url]);
    }
    run_cmd(cmd.args(args).envs(env.iter().copied()))
}

pub fn run_cmd(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("running tickq");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Poll `check` until it gives a value; panic with `what` after `limit`.
#[track_caller]
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A job's JSON as `tickq job ID --json` shows it.
pub fn job(url: &str, id: &str) -> serde_json::Value {
    run(Some(url), &["job", id, "--json"]).json()
}

/// Wait until job `id` is in `state`; its JSON then.
#[track_caller]
pub fn wait_state(url: &str, id: &str, state: &str, limit: Duration) -> serde_json::Value {
    wait_for(limit, &format!("job {id} {state}"), || {
        let job = job(url, id);
        (job["state"] == state).then_some(job)
    })
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

/// Whether process `pid` is gone (or a zombie nobody reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses: "pid (comm) S ...".
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A `tickq server` child with its log in a file. Killed on drop if still running.
pub struct Server {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Start `tickq server ARGS` with `config` (TOML text, if any) and wait for its worker.
    pub fn start(config: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let server = Server::spawn(config, args, env);
        server.wait_log("worker started", Duration::from_secs(20));
        server
    }

    /// Start without waiting for anything.
    pub fn spawn(config: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let mut cmd = tickq();
        cmd.arg("server");
        if let Some(text) = config {
            let path = dir.path().join("tickq.toml");
            std::fs::write(&path, text).expect("writing the config");
            cmd.arg("--config").arg(path);
        }
        cmd.args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"));
        let child = cmd.spawn().expect("starting tickq server");
        Server {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[track_caller]
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        wait_for(limit, &format!("server log line {needle:?}"), || {
            self.log().contains(needle).then_some(())
        });
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Wait for the server to exit by itself.
    #[track_caller]
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for tickq server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tickq server did not exit in time; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 request with an optional JSON body; answers the status and the body as
/// JSON (`Null` when it is not JSON).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read as _, Write as _};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, text) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (
        status,
        serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
    )
}
