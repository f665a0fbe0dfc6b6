//! Deployment checks: is this Redis (and this node) safe to run tickq on?
//!
//! [`Client::doctor`](crate::Client::doctor) asks Redis and this machine, and answers a
//! [`Report`] of typed [`Finding`]s that serialise to the document `tickq doctor --json`
//! prints, so every surface renders the same findings. Each problem says what it risks and
//! what to do.
//!
//! | check | error | warning |
//! | --- | --- | --- |
//! | `redis_version` | older than 7.0 | |
//! | `persistence` | | no AOF (what a restart loses) |
//! | `eviction` | a `maxmemory-policy` that evicts: jobs can vanish | |
//! | `memory` | over 90% of `maxmemory` | over 75% |
//! | `clock` | this node's clock more than 1 s from Redis' | over 250 ms |
//! | `acl` | a command tickq needs is not allowed to this user | |
//! | `exec_allow` | a listed program is missing or not executable | exec is off |

use crate::Result;
use crate::broker::Broker;
use crate::broker::doctor::{AclMethod, Permission, is_noperm};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// This node's clock may be this far from Redis' before the check fails: leases, schedules
/// and delays are counted on Redis' clock, but a node's log and its lock deadlines are not.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(1);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Sound.
    Ok,
    /// Works, with a risk some run with on purpose (the message says which).
    Warning,
    /// Unsafe or broken: fix it before relying on this deployment.
    Error,
}

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// The server and its version (Redis or Valkey, 7.0 or newer).
    RedisVersion,
    /// Append-only file and snapshots: what a Redis restart loses.
    Persistence,
    /// `maxmemory-policy`: whether Redis may delete keys to make room.
    Eviction,
    /// Used memory against `maxmemory`.
    Memory,
    /// This node's clock against Redis `TIME`.
    Clock,
    /// Whether this connection's user may run every command tickq sends.
    Acl,
    /// Whether the programs exec jobs may run exist here and are executable.
    ExecAllow,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// What was checked.
    pub check: Check,
    /// How bad it is.
    pub severity: Severity,
    /// What was found, and for a problem what it risks.
    pub message: String,
    /// What to do about a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn new(check: Check, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            check,
            severity,
            message: message.into(),
            fix: None,
        }
    }

    fn ok(check: Check, message: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Ok, message)
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Every finding of one run, in the order of [`Check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Whether no finding is an error.
    pub sound: bool,
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    fn new(mut findings: Vec<Finding>) -> Report {
        findings.sort_by_key(|f| f.check);
        Report {
            sound: findings.iter().all(|f| f.severity != Severity::Error),
            findings,
        }
    }

    /// The findings that are warnings or errors.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity != Severity::Ok)
    }
}

/// The checks to run; made by [`Client::doctor`](crate::Client::doctor).
#[derive(Clone)]
#[must_use = "a Doctor does nothing until `run` is called"]
pub struct Doctor {
    broker: Broker,
    exec_allow: Option<Vec<String>>,
}

impl std::fmt::Debug for Doctor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doctor")
            .field("exec_allow", &self.exec_allow)
            .finish_non_exhaustive()
    }
}

impl Doctor {
    pub(crate) fn new(broker: Broker) -> Doctor {
        Doctor {
            broker,
            exec_allow: None,
        }
    }

    /// Also check the programs exec jobs may run (the `[exec] allow` list of a `tickq server`
    /// config): each must exist, as a path or on `PATH`, and be executable. An empty list is a
    /// warning that exec is off. Default: not checked.
    pub fn exec_allow(mut self, programs: &[String]) -> Doctor {
        self.exec_allow = Some(programs.to_vec());
        self
    }

    /// Run every check. Fails only when Redis cannot be reached; a check Redis refuses (an
    /// `INFO` the ACL does not allow) is a finding.
    pub async fn run(self) -> Result<Report> {
        let broker = &self.broker;
        let mut findings = Vec::new();
        match broker.info(&["server", "persistence", "memory"]).await {
            Ok(nodes) => {
                let save = match broker.config_get("save").await {
                    Ok(save) => Ok(save),
                    Err(e) if is_noperm(&e) => Err(()),
                    Err(e) => return Err(e.into()),
                };
                for info in &nodes {
                    findings.extend(info_findings(info, save.clone()));
                }
            }
            Err(e) if is_noperm(&e) => {
                for check in [Check::RedisVersion, Check::Persistence, Check::Eviction] {
                    findings.push(
                        Finding::new(
                            check,
                            Severity::Warning,
                            format!("not checked: this user may not run INFO ({e})"),
                        )
                        .fix("allow INFO to tickq's user (+info), or run the check as an admin"),
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
        let (offset_ms, rtt) = broker.clock_offset().await?;
        findings.push(clock_finding(offset_ms, rtt));
        let (method, permissions) = broker.permissions().await?;
        findings.push(acl_finding(method, &permissions));
        if let Some(programs) = &self.exec_allow {
            // The PATH exec itself falls back to when none is set.
            let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
            findings.extend(exec_findings(programs, Some(path)));
        }
        Ok(Report::new(findings))
    }
}

/// `key:value` lines of an INFO reply.
fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// The version, persistence, eviction and memory findings of one server's INFO. `save` is
/// the `save` setting, `Err` when this user may not read it.
fn info_findings(info: &str, save: std::result::Result<Option<String>, ()>) -> Vec<Finding> {
    let mut out = Vec::new();
    let node = match (info_field(info, "tcp_port"), info_field(info, "run_id")) {
        (Some(port), _) if port != "0" => format!(" (port {port})"),
        _ => String::new(),
    };

    // Valkey answers redis_version 7.2.4 for compatibility and its own version apart.
    let (name, version) = match info_field(info, "valkey_version") {
        Some(v) => ("Valkey", v),
        None => (
            "Redis",
            info_field(info, "redis_version").unwrap_or("unknown"),
        ),
    };
    let compat = info_field(info, "redis_version").unwrap_or(version);
    let major: u32 = compat
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    out.push(if major >= 7 {
        Finding::ok(Check::RedisVersion, format!("{name} {version}{node}"))
    } else {
        Finding::new(
            Check::RedisVersion,
            Severity::Error,
            format!("{name} {version}{node}: tickq needs Redis 7.0 or newer (or Valkey)"),
        )
        .fix("upgrade Redis to 7.0 or newer")
    });

    let aof = info_field(info, "aof_enabled") == Some("1");
    out.push(match (aof, save) {
        (true, _) => Finding::ok(Check::Persistence, format!("append-only file on{node}")),
        (false, Ok(Some(save))) if !save.trim().is_empty() => Finding::new(
            Check::Persistence,
            Severity::Warning,
            format!(
                "no append-only file, only RDB snapshots (save {save}){node}: a Redis crash \
                 loses every enqueue, ack and schedule change since the last snapshot"
            ),
        )
        .fix("set appendonly yes (appendfsync everysec loses at most about a second)"),
        (false, Ok(_)) => Finding::new(
            Check::Persistence,
            Severity::Warning,
            format!(
                "persistence is off{node} (no append-only file, no snapshots): a Redis restart \
                 loses every job, schedule and lock"
            ),
        )
        .fix("set appendonly yes, unless losing everything on a restart is intended"),
        (false, Err(())) => Finding::new(
            Check::Persistence,
            Severity::Warning,
            format!(
                "no append-only file{node}, and this user may not read the snapshot setting \
                 (CONFIG GET save): a Redis restart loses at least the writes since the last \
                 snapshot, everything if there are none"
            ),
        )
        .fix("set appendonly yes"),
    });

    let policy = info_field(info, "maxmemory_policy").unwrap_or("unknown");
    out.push(if policy == "noeviction" {
        Finding::ok(
            Check::Eviction,
            format!("maxmemory-policy noeviction{node}"),
        )
    } else {
        Finding::new(
            Check::Eviction,
            Severity::Error,
            format!(
                "maxmemory-policy {policy}{node} lets Redis delete keys when memory is full: \
                 jobs, their indexes and locks can vanish without an error"
            ),
        )
        .fix("set maxmemory-policy noeviction (writes then fail loudly when memory is full)")
    });

    let used: u64 = info_field(info, "used_memory")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max: u64 = info_field(info, "maxmemory")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    out.push(if let Some(percent) = (used * 100).checked_div(max) {
        let message = format!(
            "{} used of maxmemory {} ({percent}%){node}",
            mib(used),
            mib(max)
        );
        match percent {
            90.. => Finding::new(
                Check::Memory,
                Severity::Error,
                format!("{message}: writes (enqueues, acks) fail when it is full"),
            )
            .fix("raise maxmemory, or drain or purge queues (tickq queue purge)"),
            75..=89 => Finding::new(Check::Memory, Severity::Warning, message)
                .fix("raise maxmemory before the backlog grows further"),
            _ => Finding::ok(Check::Memory, message),
        }
    } else {
        let system: u64 = info_field(info, "total_system_memory")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let finding = Finding::ok(
            Check::Memory,
            format!("{} used, no maxmemory set{node}", mib(used)),
        );
        if system > 0 && used * 10 > system * 9 {
            Finding::new(
                Check::Memory,
                Severity::Warning,
                format!(
                    "{} used of {} on the machine, no maxmemory set{node}: the OS may kill Redis",
                    mib(used),
                    mib(system)
                ),
            )
            .fix("set maxmemory below the machine's memory, or add memory")
        } else {
            finding
        }
    });
    out
}

fn clock_finding(offset_ms: i64, rtt: Duration) -> Finding {
    let message = format!(
        "this node's clock is {offset_ms:+} ms from Redis' (Redis minus node; round trip {} ms)",
        rtt.as_millis()
    );
    let off = offset_ms.unsigned_abs();
    if off > MAX_CLOCK_OFFSET.as_millis() as u64 {
        Finding::new(
            Check::Clock,
            Severity::Error,
            format!(
                "{message}: over {} s, so times this node shows and lock deadlines it keeps \
                 disagree with Redis'",
                MAX_CLOCK_OFFSET.as_secs()
            ),
        )
        .fix("synchronise this machine's clock (and Redis') with NTP (chrony, systemd-timesyncd)")
    } else if off > 250 {
        Finding::new(Check::Clock, Severity::Warning, message)
            .fix("check NTP on this machine and on Redis'")
    } else {
        Finding::ok(Check::Clock, message)
    }
}

fn acl_finding(method: AclMethod, permissions: &[(&str, Permission)]) -> Finding {
    let how = match method {
        AclMethod::DryRun => "ACL DRYRUN",
        AclMethod::Tried => "trying each on tickq:{#doctor}:* keys",
    };
    let denied: Vec<(&str, &str)> = permissions
        .iter()
        .filter_map(|(name, p)| match p {
            Permission::Denied(why) => Some((*name, why.as_str())),
            Permission::Allowed => None,
        })
        .collect();
    if denied.is_empty() {
        return Finding::ok(
            Check::Acl,
            format!(
                "this user may run all {} commands tickq sends on tickq:* keys (checked by {how})",
                permissions.len()
            ),
        );
    }
    // NOPERM names either the command or the key the user may not touch.
    let about_keys = |why: &str| why.contains("key") && !why.contains("command");
    let keys = denied.iter().any(|(_, why)| about_keys(why));
    let names: Vec<&str> = denied.iter().map(|(n, _)| *n).collect();
    let mut grant: Vec<String> = denied
        .iter()
        .filter(|(_, why)| !about_keys(why))
        .map(|(n, _)| format!("+{n}"))
        .collect();
    if keys {
        grant.push("~tickq:*".to_owned());
    }
    Finding::new(
        Check::Acl,
        Severity::Error,
        format!(
            "this user may not run {} (checked by {how}: {}); tickq fails where it needs them",
            names.join(", "),
            denied[0].1
        ),
    )
    .fix(format!(
        "ACL SETUSER <user> {} (docs/operations.md has the whole ACL)",
        grant.join(" ")
    ))
}

/// The exec allow list against this machine: each program as exec would find it.
fn exec_findings(programs: &[String], path: Option<std::ffi::OsString>) -> Vec<Finding> {
    if programs.is_empty() {
        return vec![
            Finding::new(
                Check::ExecAllow,
                Severity::Warning,
                "the exec allow list is empty: exec jobs are off on this node",
            )
            .fix("list the programs exec jobs may run ([exec] allow), if this node should run any"),
        ];
    }
    let dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    programs
        .iter()
        .map(|program| {
            let found = if program.contains('/') {
                executable(Path::new(program)).then(|| PathBuf::from(program))
            } else {
                dirs.iter().map(|d| d.join(program)).find(|p| executable(p))
            };
            match found {
                Some(at) => Finding::ok(
                    Check::ExecAllow,
                    format!("{program:?} is executable at {}", at.display()),
                ),
                None => Finding::new(
                    Check::ExecAllow,
                    Severity::Error,
                    format!(
                        "{program:?} is on the exec allow list but no executable file by that \
                         name is {}: its jobs go to dead",
                        if program.contains('/') {
                            "there"
                        } else {
                            "on PATH"
                        }
                    ),
                )
                .fix(format!(
                    "install {program:?}, or remove it from the allow list"
                )),
            }
        })
        .collect()
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\ntcp_port:6380\r\n# Persistence\r\n\
        aof_enabled:0\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:0\r\n\
        maxmemory_policy:noeviction\r\ntotal_system_memory:8589934592\r\n";

    fn severity(findings: &[Finding], check: Check) -> Severity {
        findings.iter().find(|f| f.check == check).unwrap().severity
    }

    #[test]
    fn an_evicting_policy_is_an_error_and_noeviction_is_sound() {
        let ok = info_findings(INFO, Ok(Some("3600 1".into())));
        assert_eq!(severity(&ok, Check::Eviction), Severity::Ok);
        assert_eq!(severity(&ok, Check::RedisVersion), Severity::Ok);
        for policy in ["allkeys-lru", "volatile-ttl", "allkeys-random"] {
            let info = INFO.replace("noeviction", policy);
            let f = info_findings(&info, Ok(None));
            let eviction = f.iter().find(|f| f.check == Check::Eviction).unwrap();
            assert_eq!(eviction.severity, Severity::Error, "{policy}");
            assert!(eviction.message.contains("can vanish"), "{eviction:?}");
            assert!(eviction.fix.as_deref().unwrap().contains("noeviction"));
        }
    }

    #[test]
    fn persistence_off_is_a_warning_that_says_what_a_restart_loses() {
        let f = info_findings(INFO, Ok(Some(String::new())));
        let p = f.iter().find(|f| f.check == Check::Persistence).unwrap();
        assert_eq!(p.severity, Severity::Warning);
        assert!(p.message.contains("restart loses every job"), "{p:?}");
        let rdb = info_findings(INFO, Ok(Some("3600 1".into())));
        let p = rdb.iter().find(|f| f.check == Check::Persistence).unwrap();
        assert!(p.message.contains("since the last snapshot"), "{p:?}");
        let aof = info_findings(&INFO.replace("aof_enabled:0", "aof_enabled:1"), Err(()));
        assert_eq!(severity(&aof, Check::Persistence), Severity::Ok);
    }

    #[test]
    fn memory_near_maxmemory_is_a_warning_then_an_error() {
        let at = |used: u64| {
            let info = INFO
                .replace("used_memory:1048576", &format!("used_memory:{used}"))
                .replace("maxmemory:0", "maxmemory:1000");
            severity(&info_findings(&info, Ok(None)), Check::Memory)
        };
        assert_eq!(at(100), Severity::Ok);
        assert_eq!(at(800), Severity::Warning);
        assert_eq!(at(950), Severity::Error);
    }

    #[test]
    fn old_redis_and_valkey_are_named() {
        let old = info_findings(&INFO.replace("7.0.15", "6.2.6"), Ok(None));
        assert_eq!(severity(&old, Check::RedisVersion), Severity::Error);
        let valkey = INFO.replace(
            "redis_version:7.0.15",
            "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.0.0",
        );
        let f = info_findings(&valkey, Ok(None));
        assert_eq!(f[0].message, "Valkey 9.0.0 (port 6380)");
    }

    #[test]
    fn a_clock_over_a_second_off_is_an_error() {
        let rtt = Duration::from_millis(1);
        assert_eq!(clock_finding(20, rtt).severity, Severity::Ok);
        assert_eq!(clock_finding(-400, rtt).severity, Severity::Warning);
        let off = clock_finding(-1500, rtt);
        assert_eq!(off.severity, Severity::Error);
        assert!(off.message.contains("-1500 ms"), "{off:?}");
        assert!(off.fix.unwrap().contains("NTP"));
    }

    #[test]
    fn a_denied_command_names_what_to_grant() {
        let f = acl_finding(
            AclMethod::Tried,
            &[
                ("get", Permission::Allowed),
                (
                    "xadd",
                    Permission::Denied(
                        "NOPERM this user has no permissions to run the 'xadd' command".into(),
                    ),
                ),
            ],
        );
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("may not run xadd"), "{f:?}");
        assert!(f.fix.unwrap().contains("+xadd"));
    }

    #[test]
    fn exec_programs_must_exist_and_be_executable() {
        let dir = tempfile_dir();
        let script = dir.join("job.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let path = Some(dir.clone().into_os_string());
        let f = exec_findings(&[script.display().to_string()], path.clone());
        assert_eq!(f[0].severity, Severity::Error, "not executable yet: {f:?}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = exec_findings(&["job.sh".into(), "missing-program".into()], path);
        assert_eq!(f[0].severity, Severity::Ok, "{f:?}");
        assert_eq!(f[1].severity, Severity::Error, "{f:?}");
        assert!(f[1].message.contains("on PATH"));
        assert_eq!(exec_findings(&[], None)[0].severity, Severity::Warning);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tickq-doctor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_report_is_sound_without_errors_and_serialises_in_snake_case() {
        let report = Report::new(vec![
            clock_finding(0, Duration::ZERO),
            Finding::new(Check::Persistence, Severity::Warning, "off"),
        ]);
        assert!(report.sound);
        assert_eq!(report.problems().count(), 1);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["findings"][0]["check"], "persistence");
        assert_eq!(json["findings"][0]["severity"], "warning");
        assert_eq!(json["findings"][1]["check"], "clock");
        assert!(!Report::new(vec![clock_finding(5000, Duration::ZERO)]).sound);
    }
}
