//! `tickq cron ...` and the scheduler inside `tickq server`: every verb as text and JSON,
//! `cron next` with no Redis, schedules from the config file firing for real, and three nodes
//! sharing one schedule while one of them is killed.

use crate::util::{Server, run, run_cmd, tickq, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

fn keys(redis: &TestRedis) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.sync_conn())
        .unwrap()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `cron next` with an address that would be a usage error if it were read, and `--redis`
/// pointing at a listener that must never see a connection.
fn next(args: &[&str]) -> crate::util::Run {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let mut cmd = tickq();
    cmd.env("TICKQ_REDIS_URL", "nonsense")
        .args(["--redis", &url, "cron", "next"])
        .args(args);
    let out = run_cmd(&mut cmd);
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "cron next {args:?} connected to the Redis address"
    );
    out
}

#[test]
fn next_needs_no_redis_and_follows_dst() {
    // Spring forward in New York: 02:30 does not exist on 2026-03-08; the tick fires at the
    // end of the gap, 03:00 EDT, and the day after is back to 02:30 (now EDT).
    let out = next(&[
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-06T12:00:00Z",
        "--count",
        "4",
    ])
    .ok();
    assert_eq!(
        out.stdout,
        "2026-03-07T02:30:00-05:00\n2026-03-08T03:00:00-04:00\n\
         2026-03-09T02:30:00-04:00\n2026-03-10T02:30:00-04:00\n"
    );

    // Fall back: 01:30 happens twice on 2026-11-01; a fixed-time schedule fires once, at the
    // first (EDT). --after as Unix ms, and JSON.
    let after = "1793332800000"; // 2026-10-30T04:00:00Z
    let doc = next(&[
        "30 1 * * *",
        "--tz",
        "America/New_York",
        "--after",
        after,
        "--count",
        "4",
        "--json",
    ])
    .json();
    assert_eq!(doc["schedule"], "30 1 * * *");
    assert_eq!(doc["timezone"], "America/New_York");
    assert_eq!(doc["after"], "2026-10-30T04:00:00Z");
    let at: Vec<&str> = doc["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["at"].as_str().unwrap())
        .collect();
    assert_eq!(
        at,
        [
            "2026-10-30T01:30:00-04:00",
            "2026-10-31T01:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-02T01:30:00-05:00"
        ]
    );
    assert_eq!(doc["next"][2]["utc"], "2026-11-01T05:30:00Z");
    assert_eq!(doc["next"][2]["unix_ms"], 1_793_511_000_000i64);

    // @every is aligned to the epoch, whatever the zone.
    let doc = next(&[
        "@every 30s",
        "--tz",
        "Asia/Kolkata",
        "--after",
        "2026-03-06T00:00:10Z",
        "--count",
        "3",
        "--json",
    ])
    .json();
    let utc: Vec<&str> = doc["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["utc"].as_str().unwrap())
        .collect();
    assert_eq!(
        utc,
        [
            "2026-03-06T00:00:30Z",
            "2026-03-06T00:01:00Z",
            "2026-03-06T00:01:30Z"
        ]
    );
    assert_eq!(doc["next"][0]["at"], "2026-03-06T05:30:30+05:30");
    for fire in doc["next"].as_array().unwrap() {
        assert_eq!(fire["unix_ms"].as_i64().unwrap() % 30_000, 0, "{fire}");
    }

    // Default: 5 times after now, in UTC.
    let out = next(&["@hourly"]).ok();
    assert_eq!(out.stdout.lines().count(), 5, "{out:?}");
    assert!(
        out.stdout.lines().all(|l| l.ends_with(":00:00+00:00")),
        "{out:?}"
    );

    // A schedule that never fires: nothing on stdout, a note on stderr.
    let out = next(&["0 0 30 2 *"]).ok();
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.contains("no fire time"), "{out:?}");
}

#[test]
fn bad_expressions_and_zones_exit_2_naming_the_field() {
    for (args, needle) in [
        (
            &["0 25 * * *"][..],
            "field 2 (hour): 25 is out of range 0-23",
        ),
        (&["61 * * * * *"], "field 1 (second)"),
        (&["* * 32 * *"], "field 3 (day-of-month)"),
        (&["* * * 13 *"], "field 4 (month)"),
        (&["* * * * MON-FOO"], "field 5 (day-of-week)"),
        (&["*/0 * * * *"], "field 1 (minute)"),
        (&["* *"], "found 2 fields"),
        (&["@every 5x"], "@every"),
        (&["@sometimes"], "unknown macro"),
        (&["@daily", "--tz", "Mars/Olympus"], "unknown time zone"),
        (&["@daily", "--count", "0"], "--count"),
        (&["@daily", "--after", "tomorrow"], "--after"),
    ] {
        next(args).fails(2, needle);
    }

    // The same engine checks `cron add`, before Redis is touched.
    let redis = TestRedis::start();
    let url = redis.url();
    for (args, needle) in [
        (
            &["x", "0 25 * * *", "--queue", "q", "--kind", "k"][..],
            "field 2 (hour)",
        ),
        (
            &[
                "x",
                "@daily",
                "--queue",
                "q",
                "--tz",
                "Nowhere/Land",
                "--kind",
                "k",
            ],
            "unknown time zone",
        ),
        (
            &["x y", "@daily", "--queue", "q", "--kind", "k"],
            "schedule name",
        ),
        (
            &["x", "@daily", "--queue", "q{1}", "--kind", "k"],
            "queue name",
        ),
        (&["x", "@daily", "--queue", "q"], "--exec"),
        (&["x", "@daily", "--queue", "q", "--exec"], "PROGRAM"),
        (
            &["x", "@daily", "--queue", "q", "--kind", "k", "--", "echo"],
            "cannot be used with",
        ),
        (
            &[
                "x",
                "@daily",
                "--queue",
                "q",
                "--kind",
                "k",
                "--payload",
                "{x",
            ],
            "not valid JSON",
        ),
        (
            &[
                "x",
                "@daily",
                "--queue",
                "q",
                "--kind",
                "exec",
                "--payload",
                r#"{"cmd": "ls"}"#,
            ],
            "exec job's payload",
        ),
        (
            &[
                "x",
                "@daily",
                "--queue",
                "q",
                "--exec",
                "--env",
                "PATH=/tmp",
                "--",
                "ls",
            ],
            "PATH",
        ),
        (
            &[
                "x",
                "@daily",
                "--queue",
                "q",
                "--overlap",
                "sometimes",
                "--kind",
                "k",
            ],
            "sometimes",
        ),
    ] {
        run(Some(&url), &[&["cron", "add"], args].concat()).fails(2, needle);
    }
    assert_eq!(
        keys(&redis),
        Vec::<String>::new(),
        "bad input touched Redis"
    );
}

#[test]
fn every_verb_as_text_and_json() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());

    assert_eq!(run(u, &["cron", "ls"]).ok().stdout, "no schedules\n");
    assert_eq!(
        run(u, &["cron", "ls", "--json"]).json(),
        serde_json::json!({"schedules": []})
    );

    // add: created, unchanged, updated; text and JSON.
    let nightly = [
        "cron",
        "add",
        "nightly",
        "0 2 * * *",
        "--queue",
        "reports",
        "--tz",
        "Asia/Shanghai",
        "--overlap",
        "forbid",
        "--catchup",
        "all",
        "--exec",
        "--env",
        "PART=1",
        "--",
        "report.sh",
        "--part",
        "1",
    ];
    let out = run(u, &nightly).ok();
    assert!(
        out.stdout
            .starts_with("schedule nightly created; next fire "),
        "{out:?}"
    );
    assert!(out.stdout.contains("T02:00:00+08:00 ("), "{out:?}");
    let out = run(u, &nightly).ok();
    assert!(
        out.stdout.starts_with("schedule nightly unchanged; "),
        "{out:?}"
    );
    let again = run(
        u,
        &[
            "cron",
            "add",
            "nightly",
            "0 2 * * *",
            "--queue",
            "reports",
            "--tz",
            "Asia/Shanghai",
            "--overlap",
            "forbid",
            "--catchup",
            "all",
            "--exec",
            "--env",
            "PART=1",
            "--json",
            "--",
            "report.sh",
            "--part",
            "1",
        ],
    )
    .json();
    assert_eq!(again["name"], "nightly");
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(again["version"], 1);
    let next_at = again["next_at"].as_str().unwrap();
    assert!(next_at.ends_with("T02:00:00+08:00"), "{again}");
    assert!(
        again["next_at_utc"]
            .as_str()
            .unwrap()
            .ends_with("T18:00:00Z"),
        "{again}"
    );

    let mail = run(
        u,
        &[
            "cron",
            "add",
            "mail",
            "@every 1h",
            "--queue",
            "mail",
            "--kind",
            "digest",
            "--payload",
            r#"{"to": "ops"}"#,
            "--json",
        ],
    )
    .json();
    assert_eq!(mail["outcome"], "created");
    let changed = run(
        u,
        &[
            "cron",
            "add",
            "mail",
            "@every 2h",
            "--queue",
            "mail",
            "--kind",
            "digest",
            "--payload",
            r#"{"to": "ops"}"#,
        ],
    )
    .ok();
    assert!(
        changed.stdout.starts_with("schedule mail updated;"),
        "{changed:?}"
    );

    // ls
    let ls = run(u, &["cron", "ls", "--json"]).json();
    let schedules = ls["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 2);
    let (m, n) = (&schedules[0], &schedules[1]);
    assert_eq!(m["name"], "mail");
    assert_eq!(m["schedule"], "@every 2h");
    assert_eq!(m["version"], 2);
    assert_eq!(m["tasks"][0]["kind"], "digest");
    assert_eq!(m["tasks"][0]["payload"], serde_json::json!({"to": "ops"}));
    assert_eq!(n["name"], "nightly");
    assert_eq!(n["queue"], "reports");
    assert_eq!(n["timezone"], "Asia/Shanghai");
    assert_eq!(n["overlap"], "forbid");
    assert_eq!(n["catchup"], "all");
    assert_eq!(n["next_at"], next_at);
    assert_eq!(n["fired"], 0);
    assert_eq!(n["skipped"], 0);
    assert_eq!(n["last_fired_at"], serde_json::Value::Null);
    assert_eq!(n["paused"], false);
    // The one task mapping: an exec task is kind exec with payload {"cmd": [...]}.
    assert_eq!(
        n["tasks"][0],
        serde_json::json!({
            "kind": "exec",
            "payload": {"cmd": ["report.sh", "--part", "1"], "env": {"PART": "1"}},
            "priority": 0,
        })
    );
    let text = run(u, &["cron", "ls"]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for column in [
        "NAME",
        "QUEUE",
        "SCHEDULE",
        "TIMEZONE",
        "NEXT (UTC)",
        "PAUSED",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    assert!(lines[2].starts_with("nightly"), "{text}");
    assert!(lines[2].contains("Asia/Shanghai"), "{text}");
    assert!(lines[2].contains(next_at), "{text}");
    assert!(lines[2].ends_with("no"), "{text}");

    // pause / resume
    assert_eq!(
        run(u, &["cron", "pause", "nightly"]).ok().stdout,
        "schedule nightly paused\n"
    );
    let ls = run(u, &["cron", "ls", "--json"]).json();
    assert_eq!(ls["schedules"][1]["paused"], true);
    assert!(
        run(u, &["cron", "ls"])
            .ok()
            .stdout
            .lines()
            .nth(2)
            .unwrap()
            .ends_with("yes")
    );
    assert_eq!(
        run(u, &["cron", "resume", "nightly", "--json"]).json(),
        serde_json::json!({"name": "nightly", "paused": false})
    );
    assert_eq!(
        run(u, &["cron", "pause", "nightly", "--json"]).json(),
        serde_json::json!({"name": "nightly", "paused": true})
    );
    assert_eq!(
        run(u, &["cron", "resume", "nightly"]).ok().stdout,
        "schedule nightly resumed\n"
    );
    assert_eq!(
        run(u, &["cron", "ls", "--json"]).json()["schedules"][1]["paused"],
        false
    );

    // trigger: the job ids; the jobs carry the schedule's name.
    let ids = run(u, &["cron", "trigger", "nightly"]).ok().stdout;
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let job = crate::util::job(&url, ids[0]);
    assert_eq!(job["queue"], "reports");
    assert_eq!(job["kind"], "exec");
    assert_eq!(job["payload"]["cmd"][0], "report.sh");
    assert_eq!(job["meta"]["cron"], "nightly");
    let triggered = run(u, &["cron", "trigger", "mail", "--json"]).json();
    assert_eq!(triggered["name"], "mail");
    let jobs = triggered["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["queue"], "mail");
    assert_eq!(jobs[0]["state"], "pending");
    let id = jobs[0]["id"].as_str().unwrap();
    assert_eq!(crate::util::job(&url, id)["kind"], "digest");

    // rm
    assert_eq!(
        run(u, &["cron", "rm", "mail"]).ok().stdout,
        "schedule mail removed; jobs it created are left alone\n"
    );
    assert_eq!(crate::util::job(&url, id)["state"], "pending");
    assert_eq!(
        run(u, &["cron", "rm", "nightly", "--json"]).json(),
        serde_json::json!({"name": "nightly", "removed": true})
    );
    assert_eq!(run(u, &["cron", "ls"]).ok().stdout, "no schedules\n");

    // Unknown names: the operation failed, exit 1.
    for verb in ["rm", "trigger", "pause", "resume"] {
        run(u, &["cron", verb, "nightly"]).fails(1, "no schedule named nightly");
        run(u, &["cron", verb, "nightly", "--json"]).fails(1, "no schedule named nightly");
    }
}

/// A server config: exec allowed for `sh`, a short lease, and `cron` (TOML) appended.
fn server_config(cron: &str) -> String {
    format!(
        "[worker]\nqueues = {{ default = 1 }}\nlease = \"2s\"\n\n[exec]\nallow = [\"sh\"]\n\n{cron}"
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn server_runs_the_config_schedules() {
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ticks.txt");
    let config = server_config(&format!(
        "[[cron]]\nname = \"every-second\"\nschedule = \"@every 1s\"\ntasks = [ {{ kind = \
         \"exec\", cmd = [\"sh\", \"-c\", \"echo \\\"$TICKQ_CRON $TICKQ_SCHEDULED_AT \
         $TICKQ_JOB_ID\\\" >> '{}'\"] }} ]\n",
        out.display()
    ));
    let args = ["--redis", url.as_str(), "--node", "solo"];
    let mut server = Server::start(Some(&config), &args, &[]);
    let log = server.log();
    assert!(
        log.contains("schedule=every-second outcome=created"),
        "{log}"
    );
    assert!(!log.contains("not run"), "{log}");

    wait_for(LIMIT, "two ticks to run", || {
        (lines(&out).len() >= 2).then_some(())
    });
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait(LIMIT).code(), Some(0), "log:\n{}", server.log());
    let seen = lines(&out);
    let mut ticks = BTreeSet::new();
    for line in &seen {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line}");
        assert_eq!(parts[0], "every-second", "TICKQ_CRON: {line}");
        let tick: i64 = parts[1].parse().expect("TICKQ_SCHEDULED_AT is Unix ms");
        assert_eq!(tick % 1000, 0, "a tick is a whole second: {line}");
        assert_eq!(parts[2], format!("cron:every-second:{tick}:0"), "{line}");
        assert!(ticks.insert(tick), "tick {tick} ran twice: {seen:?}");
    }
    let ticks: Vec<i64> = ticks.into_iter().collect();
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 1000),
        "a tick was missed: {ticks:?}"
    );

    let ls = run(Some(&url), &["cron", "ls", "--json"]).json();
    let s = &ls["schedules"][0];
    assert_eq!(s["name"], "every-second");
    assert!(s["fired"].as_u64().unwrap() >= ticks.len() as u64, "{s}");
    assert_eq!(
        s["tasks"][0]["payload"]["cmd"][0], "sh",
        "an exec task is an exec job with payload {{\"cmd\": [...]}}: {s}"
    );

    // The same config again: nothing to change. A schedule the config does not name is
    // left alone, and the log says so.
    run(
        Some(&url),
        &[
            "cron", "add", "other", "@daily", "--queue", "q", "--kind", "k",
        ],
    )
    .ok();
    let mut again = Server::start(Some(&config), &args, &[]);
    let log = again.log();
    assert!(
        log.contains("schedule=every-second outcome=unchanged"),
        "{log}"
    );
    assert!(log.contains("left in place"), "{log}");
    assert!(log.contains(r#"schedules=["other"]"#), "{log}");
    again.signal(libc::SIGTERM);
    assert_eq!(again.wait(LIMIT).code(), Some(0), "log:\n{}", again.log());

    // A changed spec: updated, and the other schedule is still there.
    let changed = config.replace("@every 1s", "@every 1h");
    let mut third = Server::start(Some(&changed), &args, &[]);
    let log = third.log();
    assert!(
        log.contains("schedule=every-second outcome=updated"),
        "{log}"
    );
    third.signal(libc::SIGTERM);
    assert_eq!(third.wait(LIMIT).code(), Some(0), "log:\n{}", third.log());
    let ls = run(Some(&url), &["cron", "ls", "--json"]).json();
    let names: Vec<&str> = ls["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["every-second", "other"]);
    assert_eq!(ls["schedules"][0]["schedule"], "@every 1h");
}

/// Lines "tick task node" by (tick, task).
fn runs(path: &Path) -> BTreeMap<(i64, u32), Vec<String>> {
    let mut runs: BTreeMap<(i64, u32), Vec<String>> = BTreeMap::new();
    for line in lines(path) {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line:?}");
        let tick = parts[0].parse().unwrap();
        let task = parts[1].parse().unwrap();
        runs.entry((tick, task))
            .or_default()
            .push(parts[2].to_owned());
    }
    runs
}

/// The ticks of which all 4 tasks ran at least once.
fn complete_ticks(runs: &BTreeMap<(i64, u32), Vec<String>>) -> BTreeSet<i64> {
    let ticks: BTreeSet<i64> = runs.keys().map(|(t, _)| *t).collect();
    ticks
        .into_iter()
        .filter(|t| (1..=4).all(|task| runs.contains_key(&(*t, task))))
        .collect()
}

#[test]
fn three_nodes_run_each_task_of_each_tick_once_even_when_one_dies() {
    const PERIOD: i64 = 2000;
    const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs.txt");
    // Each task takes a second and writes its line at the end: a node killed mid-job takes
    // its `sh` with it before the write (exec programs die with their node), and the job
    // runs again elsewhere once its lease expires.
    let task = |n: u32| {
        format!(
            "{{ kind = \"exec\", cmd = [\"sh\", \"-c\", \"sleep 1; echo \\\"$TICKQ_SCHEDULED_AT \
             {n} $TICKQ_NODE\\\" >> '{}'\"] }}",
            out.display()
        )
    };
    let config = server_config(&format!(
        "[[cron]]\nname = \"fleet\"\nschedule = \"@every 2s\"\ntasks = [\n  {},\n  {},\n  {},\n  \
         {},\n]\n",
        task(1),
        task(2),
        task(3),
        task(4)
    ));
    let mut nodes: Vec<Server> = NODES
        .iter()
        .map(|node| Server::spawn(Some(&config), &["--redis", &url, "--node", node], &[]))
        .collect();
    for node in &nodes {
        node.wait_log("worker started", LIMIT);
    }

    // Phase 1: all three up for about 12 s.
    std::thread::sleep(Duration::from_secs(12));
    let before = runs(&out);
    let done_before = complete_ticks(&before);
    assert!(done_before.len() >= 4, "too few ticks ran: {before:?}");
    let workers: BTreeSet<&String> = before.values().flatten().collect();
    assert!(workers.len() >= 2, "the tasks did not spread: {before:?}");

    // Phase 2: kill -9 a node in the middle of a task, and go on. A tick's jobs start at the
    // tick (the last within the spread grace, 250 ms) and take a second: one of a tick less
    // than 500 ms old is still running.
    let (victim, held) = wait_for(LIMIT, "a node running a task", || {
        let active = run(
            Some(&url),
            &["jobs", "default", "--state", "active", "--json"],
        )
        .json();
        let now = now_ms();
        active["jobs"].as_array()?.iter().find_map(|job| {
            let worker = job["worker"].as_str()?;
            let node = NODES
                .iter()
                .position(|n| worker.starts_with(&format!("{n}:")))?;
            // cron:fleet:<tick>:<task index>
            let id = job["id"].as_str()?;
            let (tick, index) = id.strip_prefix("cron:fleet:")?.split_once(':')?;
            let tick: i64 = tick.parse().ok()?;
            let task = index.parse::<u32>().ok()? + 1;
            (now - tick < 500).then_some((node, (tick, task)))
        })
    });
    nodes[victim].signal(libc::SIGKILL);
    let killed_at = now_ms();
    let victim_name = NODES[victim];
    drop(nodes.remove(victim));
    // Jobs the dead node held come back after its lease (2 s) and the next recoverer pass
    // (the server looks once per lease), then take a second to run; a little more for a slow
    // machine.
    let settled = killed_at + 6_000;
    // Two whole ticks after that, and every task of every tick up to then done.
    let last = (settled / PERIOD + 2) * PERIOD;
    let after = wait_for(
        Duration::from_secs(30),
        "the ticks after the kill to run",
        || {
            let runs = runs(&out);
            let done = complete_ticks(&runs);
            let first = runs.keys().next()?.0;
            ((first..=last)
                .step_by(PERIOD as usize)
                .all(|t| done.contains(&t)))
            .then_some(runs)
        },
    );

    // Every task of every tick ran, and no tick was missed.
    let done = complete_ticks(&after);
    let first = after.keys().next().unwrap().0;
    for tick in (first..=last).step_by(PERIOD as usize) {
        assert!(done.contains(&tick), "tick {tick} incomplete: {after:?}");
    }
    assert!(
        after.keys().all(|(t, _)| t % PERIOD == 0),
        "ticks are whole multiples of the period: {after:?}"
    );
    // The task the dead node was running was recovered and ran on a survivor.
    assert!(
        after[&held].iter().any(|n| n != victim_name),
        "task {held:?} of {victim_name} was not recovered: {after:?}"
    );
    // Exactly once well before the kill, and after the dead node's jobs were recovered.
    // Around the kill, a job the node had finished but not yet acknowledged runs again:
    // delivery is at least once; the tick itself fired once (its jobs have fixed ids).
    for ((tick, task), ran) in &after {
        let exact = (done_before.contains(tick) && *tick < killed_at - 2 * PERIOD)
            || (*tick > settled && *tick <= last);
        if exact {
            assert_eq!(ran.len(), 1, "tick {tick} task {task} ran on {ran:?}");
        }
        if *tick > killed_at {
            assert!(!ran.iter().any(|n| n == victim_name), "{after:?}");
        }
    }
    // No tick fired twice: no more fires than ticks since the first, none skipped.
    let ls = run(Some(&url), &["cron", "ls", "--json"]).json();
    let elapsed = (now_ms() - first) / PERIOD + 1;
    let fired = ls["schedules"][0]["fired"].as_i64().unwrap();
    assert!(fired <= elapsed, "{fired} fires in {elapsed} ticks: {ls}");
    assert_eq!(ls["schedules"][0]["skipped"], 0, "{ls}");
}

#[test]
fn the_examples_are_valid_configs() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let show = |file: &str| {
        let mut cmd = tickq();
        cmd.arg("--config")
            .arg(examples.join(file))
            .args(["config", "show", "--json"]);
        run_cmd(&mut cmd).json()
    };
    let quick = show("quickstart.toml");
    assert_eq!(quick["cron"][0]["schedule"], "@every 10s");
    let three = show("three-nodes.toml");
    assert_eq!(three["memory_high_water"], 0.9);
    let nightly = &three["cron"][0];
    assert_eq!(nightly["schedule"], "0 2 * * *");
    assert_eq!(nightly["overlap"], "forbid");
    assert_eq!(nightly["tasks"].as_array().unwrap().len(), 4);
}
