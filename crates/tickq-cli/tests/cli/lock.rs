//! `tickq lock run | set | get`: real processes holding, losing and contending for locks on a
//! real redis-server.

use crate::util::{BIN, run, run_cmd, tickq, wait_for};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

/// `tickq --redis URL lock run ARGS -- sh -c SCRIPT` with `D` (a directory for marker files)
/// and `TICKQ_BIN` in the environment.
fn lock_run(url: &str, args: &[&str], dir: &Path, script: &str) -> Command {
    let mut cmd = tickq();
    cmd.args(["--redis", url, "lock", "run"])
        .args(args)
        .args(["--", "sh", "-c", script])
        .env("D", dir)
        .env("TICKQ_BIN", BIN);
    cmd
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Process groups a test stopped or started: continued and killed on drop, so a failing test
/// leaves nothing behind.
struct Groups(Vec<i32>);

impl Drop for Groups {
    fn drop(&mut self) {
        for &pgid in &self.0 {
            signal(-pgid, libc::SIGCONT);
            signal(-pgid, libc::SIGKILL);
        }
    }
}

#[track_caller]
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    wait_for(limit, "tickq lock run to exit", || {
        child.try_wait().unwrap()
    })
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn lock_run_twenty_processes_never_overlap_and_fences_increase() {
    let redis = TestRedis::builder().appendonly(false).start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    // mkdir is atomic: it fails if another program is inside.
    let script = r#"mkdir "$D/inside" || { echo "$TICKQ_FENCE" >> "$D/overlaps"; exit 9; }
        echo "$TICKQ_FENCE" >> "$D/fences"
        sleep 0.05
        rmdir "$D/inside""#;
    let mut children: Vec<Child> = (0..20)
        .map(|_| {
            lock_run(
                &url,
                &["x", "--ttl", "2s", "--wait", "60s"],
                dir.path(),
                script,
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in &mut children {
        let status = wait_exit(child, Duration::from_secs(90));
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "{status}: {stderr}");
    }
    assert_eq!(
        read(&dir.path().join("overlaps")),
        None,
        "two programs were inside at once"
    );
    let fences: Vec<u64> = read(&dir.path().join("fences"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(fences.len(), 20, "{fences:?}");
    assert!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "fences in order of entry must increase: {fences:?}"
    );
}

#[test]
fn lock_run_stopped_past_its_ttl_loses_the_lock_and_its_writes() {
    let redis = TestRedis::builder().appendonly(false).start();
    let url = redis.url();
    let u = Some(url.as_str());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A: records its pid, waits for `go`, then tries fenced writes; on SIGTERM it notes it and
    // exits 0, so only the lock's loss can make `tickq lock run` fail.
    let script_a = r#"trap 'echo term > "$D/a.term"; exit 0' TERM
        echo $$ > "$D/a.pid"
        while [ ! -e "$D/go" ]; do sleep 0.05; done
        "$TICKQ_BIN" lock set x untouched from-a; echo $? > "$D/a.set2"
        "$TICKQ_BIN" lock set x k from-a; echo $? > "$D/a.set"
        while true; do sleep 0.05; done"#;
    let mut a = lock_run(&url, &["x", "--ttl", "1s", "--grace", "10s"], d, script_a)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tickq_pgid = a.id() as i32;
    let mut groups = Groups(vec![tickq_pgid]);
    let program_pgid: i32 = wait_for(LIMIT, "A's program to start", || {
        read(&d.join("a.pid")).and_then(|p| p.trim().parse().ok())
    });
    groups.0.push(program_pgid);

    // Stop A and its program, past the TTL.
    signal(-tickq_pgid, libc::SIGSTOP);
    signal(-program_pgid, libc::SIGSTOP);

    // B gets the lock once A's key expired, and writes with its own fence.
    let b = run_cmd(&mut lock_run(
        &url,
        &["x", "--wait", "15s"],
        d,
        r#""$TICKQ_BIN" lock set x k from-b && echo "$TICKQ_FENCE" > "$D/b.fence""#,
    ));
    assert_eq!(b.code, 0, "{b:?}");
    let b_fence = read(&d.join("b.fence")).unwrap().trim().to_owned();
    let stored = run(u, &["lock", "get", "x", "k", "--json"]).json();
    assert_eq!(stored["value"], "from-b");
    assert_eq!(stored["fence"].to_string(), b_fence);

    // A's program runs again first and tries its write: refused, its fence is stale.
    std::fs::write(d.join("go"), "").unwrap();
    signal(-program_pgid, libc::SIGCONT);
    let set = wait_for(LIMIT, "A's fenced write", || read(&d.join("a.set")));
    assert_eq!(set.trim(), "1", "a stale holder's write must be refused");
    // Also where B wrote nothing: B's acquiring alone made A's fence stale.
    let set2 = read(&d.join("a.set2")).unwrap();
    assert_eq!(set2.trim(), "1", "a stale holder's write must be refused");
    run(u, &["lock", "get", "x", "untouched"]).fails(1, "no value");
    assert_eq!(
        run(u, &["lock", "get", "x", "k"]).ok().stdout.trim(),
        "from-b"
    );

    // Then `tickq lock run` itself: the lease is long over, so the lock is lost at once and
    // the program is stopped, well within the grace.
    let resumed = Instant::now();
    signal(-tickq_pgid, libc::SIGCONT);
    let status = wait_exit(&mut a, Duration::from_secs(8));
    let mut stderr = String::new();
    std::io::Read::read_to_string(a.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("lock x lost"), "{stderr}");
    assert_eq!(
        read(&d.join("a.term")).as_deref(),
        Some("term\n"),
        "SIGTERM reached A's program"
    );
    assert!(
        resumed.elapsed() < Duration::from_secs(5),
        "lost must fire promptly, took {:?}",
        resumed.elapsed()
    );
    groups.0.clear();
}

#[test]
fn lock_run_not_acquired_exits_75_without_running_the_program() {
    let redis = TestRedis::builder().appendonly(false).start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut holder = lock_run(
        &url,
        &["x"],
        d,
        r#"echo > "$D/held"; while [ ! -e "$D/done" ]; do sleep 0.05; done"#,
    )
    .spawn()
    .unwrap();
    wait_for(LIMIT, "the holder to start", || read(&d.join("held")));

    let script = r#"echo ran >> "$D/ran""#;
    run_cmd(&mut lock_run(&url, &["x"], d, script)).fails(75, "lock x is held by someone else");
    let start = Instant::now();
    run_cmd(&mut lock_run(&url, &["x", "--wait", "300ms"], d, script)).fails(75, "after waiting");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(read(&d.join("ran")), None, "the program must not run");

    std::fs::write(d.join("done"), "").unwrap();
    assert!(wait_exit(&mut holder, LIMIT).success());
    // Released on exit: the next one runs at once.
    run_cmd(&mut lock_run(&url, &["x"], d, script)).ok();
    assert_eq!(read(&d.join("ran")).as_deref(), Some("ran\n"));
}

#[test]
fn lock_run_passes_the_programs_status_and_environment_on() {
    let redis = TestRedis::builder().appendonly(false).start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let code = |script: &str| run_cmd(&mut lock_run(&url, &["x"], d, script)).code;
    assert_eq!(code("exit 3"), 3);
    assert_eq!(code("exit 0"), 0);
    assert_eq!(code("kill -TERM $$"), 128 + libc::SIGTERM);
    // A fence (they grow with each run: see the twenty-process test), and the Redis is
    // handed on.
    let env =
        r#"test "$TICKQ_LOCK" = x && test "$TICKQ_FENCE" -gt 0 && test -n "$TICKQ_REDIS_URL""#;
    assert_eq!(code(env), 0);
    let missing = run_cmd(tickq().args([
        "--redis",
        &url,
        "lock",
        "run",
        "x",
        "--",
        "/nonexistent/prog",
    ]));
    assert_eq!(missing.code, 127, "{missing:?}");
}

#[test]
fn lock_run_forwards_sigterm_to_the_program() {
    let redis = TestRedis::builder().appendonly(false).start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = r#"trap 'echo term > "$D/term"; exit 7' TERM
        echo > "$D/started"
        while true; do sleep 0.05; done"#;
    let mut child = lock_run(&url, &["x"], d, script).spawn().unwrap();
    wait_for(LIMIT, "the program to start", || read(&d.join("started")));
    signal(child.id() as i32, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, LIMIT).code(), Some(7));
    assert_eq!(read(&d.join("term")).as_deref(), Some("term\n"));
}

#[test]
fn lock_set_and_get_check_fences() {
    let redis = TestRedis::builder().appendonly(false).start();
    let url = redis.url();
    let u = Some(url.as_str());
    let dir = tempfile::tempdir().unwrap();
    // Two runs: the first one's fence is stale, the second's is the latest.
    let fences: Vec<u64> = (0..2)
        .map(|_| {
            let out = run_cmd(&mut lock_run(&url, &["x"], dir.path(), "echo $TICKQ_FENCE")).ok();
            out.stdout.trim().parse().unwrap()
        })
        .collect();
    let (old, latest) = (fences[0].to_string(), fences[1].to_string());
    assert!(fences[0] < fences[1], "{fences:?}");
    run(u, &["lock", "set", "x", "k", "v1", "--fence", &old])
        .fails(1, &format!("stale fence {old}"));
    let written = run(
        u,
        &["lock", "set", "x", "k", "v2", "--fence", &latest, "--json"],
    )
    .json();
    assert_eq!(
        written,
        serde_json::json!({"written": true, "fence": fences[1]})
    );
    let mut with_env = tickq();
    with_env
        .args(["--redis", &url, "lock", "set", "x", "k", "v3"])
        .env("TICKQ_FENCE", &latest);
    run_cmd(&mut with_env).ok();
    assert_eq!(run(u, &["lock", "get", "x", "k"]).ok().stdout, "v3\n");
    let got = run(u, &["lock", "get", "x", "k", "--json"]).json();
    assert_eq!(got["fence"], fences[1]);
    assert_eq!(got["value"], "v3");
    run(u, &["lock", "get", "x", "nope"]).fails(1, "no value");
}

#[test]
fn lock_bad_input_is_a_usage_error() {
    // Nothing here reaches Redis.
    let u = Some("redis://127.0.0.1:1");
    run(u, &["lock", "run", "x", "sh", "-c", "true"]).fails(2, "unexpected argument");
    run(u, &["lock", "run", "x", "--"]).fails(2, "PROGRAM");
    run(u, &["lock", "run", "x"]).fails(2, "PROGRAM");
    run(u, &["lock", "run", "x", "--ttl", "5", "--", "true"]).fails(2, "--ttl: invalid duration");
    run(u, &["lock", "run", "x", "--wait", "soon", "--", "true"]).fails(2, "--wait");
    run(u, &["lock", "run", "x", "--ttl", "10ms", "--", "true"]).fails(2, "at least");
    run(u, &["lock", "run", "a b", "--", "true"]).fails(2, "invalid lock name");
    run(u, &["lock", "run", "x", "--", ""]).fails(2, "no program");
    run(u, &["lock", "set", "x", "k", "v"]).fails(2, "no fence");
    run(u, &["lock", "set", "x", "k", "v", "--fence", "abc"]).fails(2, "--fence");
}
