//! `lock run | set | get`.
//!
//! `lock run` is a small supervisor: take the lock, start the program in its own process
//! group, pass SIGTERM and SIGINT on to it, and stop it when the library's lost signal fires.
//! Everything about leases (renewal, when a lock counts as lost) is the library's.

use crate::config::{LockRun, Redis};
use crate::output;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use tickq::{FencedWrite, Released};
use tokio::signal::unix::{SignalKind, signal};

/// The exit status of `lock run` when the lock was not had: not acquired within --wait, or
/// lost while the program ran (EX_TEMPFAIL: try again later).
pub const NOT_HELD: u8 = 75;

/// Ends `tickq` with this status and no further message (the command printed its own).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn exit(code: u8) -> anyhow::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Exit(code).into())
    }
}

/// `tickq lock ls`.
pub async fn list(redis: &Redis, json: bool) -> anyhow::Result<()> {
    let locks = crate::connect::connect(redis)
        .await?
        .inspector()
        .locks()
        .await?;
    if json {
        output::json(&locks)?;
        return Ok(());
    }
    if locks.locks.is_empty() {
        output::text("no locks taken in the last week")?;
        return Ok(());
    }
    let mut table = crate::output::Table::new(["NAME", "HELD", "FENCE", "TIME LEFT"]);
    for lock in &locks.locks {
        table.row(vec![
            lock.name.clone(),
            if lock.held { "yes" } else { "no" }.to_owned(),
            lock.fence.to_string(),
            lock.ttl_ms
                .map(|ms| tickq::units::format_duration(std::time::Duration::from_millis(ms)))
                .unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    output::text(&table.render())?;
    Ok(())
}

pub async fn run(redis: &Redis, spec: LockRun) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let Some(guard) = client
        .lock(&spec.name)
        .ttl(spec.ttl)
        .wait(spec.wait)
        .acquire()
        .await?
    else {
        eprintln!(
            "tickq: lock {} is held by someone else{}; {} was not run",
            spec.name,
            if spec.wait.is_zero() {
                " (pass --wait DUR to wait for it)".to_owned()
            } else {
                format!(
                    " after waiting {}",
                    tickq::units::format_duration(spec.wait)
                )
            },
            spec.cmd[0]
        );
        return exit(NOT_HELD);
    };

    // Signals are caught before the program starts, so none sent meanwhile kills us and
    // leaves the program running.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let mut cmd = tokio::process::Command::new(&spec.cmd[0]);
    cmd.args(&spec.cmd[1..])
        .env("TICKQ_LOCK", &spec.name)
        .env("TICKQ_FENCE", guard.fence().to_string())
        // So that `tickq lock set` in the program writes to the Redis that issued the fence.
        .env(crate::config::REDIS_URL_ENV, &redis.url)
        .envs(redis.tls_env())
        .stdin(Stdio::inherit())
        .process_group(0);
    // A `tickq lock run` killed with -9 takes the program with it: its lock expires after the
    // TTL and another holder may start, and the two must not run at once.
    crate::child::die_with_parent(&mut cmd, libc::SIGKILL);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = guard.release().await;
            eprintln!("tickq: could not start {:?}: {e}", spec.cmd[0]);
            // As a shell reports it: 127 not found, 126 found but not runnable.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return exit(code);
        }
    };
    let pgid = child.id().expect("a just-spawned child has a pid") as i32;
    let group = |sig: libc::c_int| {
        // SAFETY: kill has no memory-safety preconditions. A negative pid names the group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    };

    let lost = guard.lost();
    tokio::pin!(lost);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            reason = &mut lost => {
                eprintln!(
                    "tickq: lock {} lost ({reason}); stopping {} (SIGTERM, SIGKILL after {})",
                    spec.name,
                    spec.cmd[0],
                    tickq::units::format_duration(spec.grace)
                );
                group(libc::SIGTERM);
                if tokio::time::timeout(spec.grace, child.wait()).await.is_err() {
                    group(libc::SIGKILL);
                }
                child.wait().await?;
                return exit(NOT_HELD);
            }
            _ = sigterm.recv() => group(libc::SIGTERM),
            _ = sigint.recv() => group(libc::SIGINT),
        }
    };
    // The program may have finished while the lease was already over (this process was
    // stopped, say): then what it did was not done under the lock.
    if guard.is_lost() {
        eprintln!(
            "tickq: lock {} lost while {} ran; its work may overlap another holder's",
            spec.name, spec.cmd[0]
        );
        return exit(NOT_HELD);
    }
    match guard.release().await {
        Ok(Released::Released) => {}
        Ok(Released::NotHeld) => eprintln!(
            "tickq: warning: lock {} was no longer held when {} exited",
            spec.name, spec.cmd[0]
        ),
        Err(e) => eprintln!(
            "tickq: warning: could not release lock {} ({e}); it expires after its TTL",
            spec.name
        ),
    }
    exit(status_code(status))
}

/// The status a shell would report: the exit code, or 128+N for a program killed by signal N.
fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.saturating_add(signal as u8),
        (None, None) => 1,
    }
}

pub async fn set(
    redis: &Redis,
    name: &str,
    key: &str,
    value: &str,
    fence: u64,
    json: bool,
) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    match client.fenced_store(name).set(key, value, fence).await? {
        FencedWrite::Written => {
            if json {
                output::json(&serde_json::json!({"written": true, "fence": fence}))?;
            }
            Ok(())
        }
        FencedWrite::Stale { latest, stored } => anyhow::bail!(
            "stale fence {fence}: lock {name} has a newer holder (latest fence {latest}, value \
             written by fence {stored}); nothing was written. Stop: the lock is not yours any more"
        ),
    }
}

pub async fn get(redis: &Redis, name: &str, key: &str, json: bool) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let Some(value) = client.fenced_store(name).get(key).await? else {
        anyhow::bail!("lock {name} has no value under {key:?}");
    };
    let text = String::from_utf8_lossy(&value.value);
    if json {
        output::json(&serde_json::json!({
            "lock": name,
            "key": key,
            "value": text,
            "fence": value.fence,
        }))?;
    } else {
        output::text(&text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_as_a_shell_reports_them() {
        assert_eq!(status_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(status_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(status_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(status_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }
}
