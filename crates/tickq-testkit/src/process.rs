//! Signals, waiting with deadlines, and log tails: the unix plumbing behind `TestRedis`.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// How often to look again while waiting for a process or server to change state.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Offset of a cluster node's bus port from its client port; fixed by Redis.
pub(crate) const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// Redis' well-known port: a developer's own server may be listening there.
const DEFAULT_REDIS_PORT: u16 = 6379;

pub(crate) fn signal(child: &Child, signal: libc::c_int) {
    if let Err(err) = try_signal(child, signal) {
        panic!(
            "sending signal {signal} to redis-server (pid {}) failed: {err}",
            child.id()
        );
    }
}

pub(crate) fn try_signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions. The child is not reaped yet (we
    // only reap through `Child::wait`), so the pid cannot have been reused.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until `child` is stopped by a signal, so that a paused server really is paused
/// when `pause()` returns: `kill(2)` only queues the signal.
///
/// Uses `waitid(WNOWAIT)`, which leaves the child's state in place, so `Child::wait` still
/// reaps it later.
pub(crate) fn wait_stopped(child: &Child, deadline: Instant) -> Result<(), String> {
    let pid = libc::id_t::from(child.id());
    loop {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value that waitid overwrites.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let options = libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT | libc::WNOHANG;
        // SAFETY: `info` is a valid, writable siginfo_t.
        let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, options) };
        if rc != 0 {
            return Err(format!("waitid failed: {}", io::Error::last_os_error()));
        }
        // With WNOHANG and nothing to report, waitid leaves si_signo at zero.
        if info.si_signo == libc::SIGCHLD {
            return match info.si_code {
                libc::CLD_STOPPED => Ok(()),
                code => Err(format!(
                    "redis-server exited instead of stopping (si_code {code})"
                )),
            };
        }
        if Instant::now() >= deadline {
            return Err("redis-server did not stop after SIGSTOP".to_owned());
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Polls for the child's exit, because `std` has no `wait` with a timeout.
pub(crate) fn wait_exit(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on redis-server") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// `SIGKILL` and reap, so no zombie is left behind.
pub(crate) fn kill_and_reap(child: &mut Child) {
    // `Child::kill` is a no-op success on an already reaped child and SIGKILL works on
    // stopped processes, so this is safe to call in any state.
    let _ = child.kill();
    let _ = child.wait();
}

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Another process may take it before redis-server binds it; callers retry with a new port
/// when the server fails to start. With `cluster_bus`, port + 10000 was free as well.
pub(crate) fn free_port(cluster_bus: bool) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if port == DEFAULT_REDIS_PORT {
            continue;
        }
        if !cluster_bus {
            return port;
        }
        let Some(bus_port) = port.checked_add(CLUSTER_BUS_OFFSET) else {
            continue;
        };
        if bus_port != DEFAULT_REDIS_PORT
            && TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free TCP port found on 127.0.0.1 after 100 attempts");
}

/// The last `lines` lines of a file, or a note saying why there are none.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                "    (empty)".to_owned()
            } else {
                all[start..]
                    .iter()
                    .map(|line| format!("    {line}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Err(err) => format!("    (cannot read {}: {err})", path.display()),
    }
}
