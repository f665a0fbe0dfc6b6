//! The program's process: finding it, its process group (stopped as a whole, never left
//! behind), the tail of its output, and how it ended.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// How long a stopped program has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// How much of stdout and of stderr is kept (the last bytes).
const TAIL_BYTES: usize = 4096;

/// After the program exits, how long to wait for the rest of its output. A background process
/// it started can hold the pipes open forever; what came so far is enough then.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// How the program ended, as the attempt's error says it.
pub(super) fn describe(status: ExitStatus) -> String {
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
pub(super) fn resolve(program: &str) -> Option<PathBuf> {
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
pub(super) struct Group {
    pgid: i32,
    running: bool,
}

impl Group {
    pub(super) fn new(pgid: i32) -> Group {
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
    pub(super) fn exited(&mut self) {
        self.running = false;
        LIVE.lock().expect("exec group registry").remove(&self.pgid);
    }

    /// SIGTERM, wait up to the grace for the leader, SIGKILL.
    pub(super) async fn terminate(&mut self, child: &mut tokio::process::Child) {
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
pub(super) struct Tail {
    buf: Arc<Mutex<Vec<u8>>>,
    task: Option<JoinHandle<()>>,
}

impl Tail {
    pub(super) fn collect(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Tail {
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
    pub(super) async fn finish(mut self) -> String {
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

    #[test]
    fn programs_resolve_on_the_server_path() {
        assert!(resolve("sh").is_some());
        assert_eq!(resolve("/no/such"), Some(PathBuf::from("/no/such")));
        assert!(resolve("no-such-program-tickq").is_none());
    }
}
