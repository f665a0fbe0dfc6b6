//! Every verb, as text and as JSON, against a real Redis with no server running.

use crate::util::{job, run, run_cmd, tickq};
use tickq_testkit::TestRedis;

#[test]
fn enqueue_prints_the_id_or_json() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());

    let human = run(
        u,
        &[
            "enqueue",
            "emails",
            "welcome",
            "--payload",
            r#"{"user": 7}"#,
        ],
    )
    .ok();
    let id = human.stdout.trim();
    assert_eq!(human.stdout.lines().count(), 1, "{human:?}");
    let stored = job(&url, id);
    assert_eq!(stored["kind"], "welcome");
    assert_eq!(stored["payload"], serde_json::json!({"user": 7}));
    assert_eq!(stored["state"], "pending");

    let answer = run(u, &["enqueue", "emails", "welcome", "--json"]).json();
    assert_eq!(answer["state"], "pending");
    assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        job(&url, answer["id"].as_str().unwrap())["payload"],
        serde_json::Value::Null
    );

    let later = run(u, &["enqueue", "emails", "later", "--in", "5m", "--json"]).json();
    assert_eq!(later["state"], "scheduled");
    let at = run(
        u,
        &[
            "enqueue",
            "emails",
            "at",
            "--at",
            "2099-01-01T00:00:00+08:00",
            "--json",
        ],
    )
    .json();
    assert_eq!(at["state"], "scheduled");
    assert_eq!(
        job(&url, at["id"].as_str().unwrap())["due_at"],
        "2098-12-31T16:00:00Z"
    );
    let at_ms = run(
        u,
        &["enqueue", "emails", "at", "--at", "4070908800000", "--json"],
    )
    .json();
    assert_eq!(at_ms["state"], "scheduled");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.json");
    std::fs::write(&file, r#"{"from": "file"}"#).unwrap();
    let opts = run(
        u,
        &[
            "enqueue",
            "emails",
            "opts",
            "--payload",
            &format!("@{}", file.display()),
            "--id",
            "fixed-1",
            "--max-attempts",
            "3",
            "--timeout",
            "1m30s",
            "--priority",
            "-7",
        ],
    )
    .ok();
    assert_eq!(opts.stdout.trim(), "fixed-1");
    let stored = job(&url, "fixed-1");
    assert_eq!(stored["payload"], serde_json::json!({"from": "file"}));
    assert_eq!(stored["max_attempts"], 3);
    assert_eq!(stored["timeout_ms"], 90_000);
    assert_eq!(stored["priority"], -7);

    // The same id again creates nothing and says so.
    run(u, &["enqueue", "emails", "opts", "--id", "fixed-1"]).fails(1, "already exists");

    // Payload from stdin.
    let mut cmd = tickq();
    cmd.args([
        "--redis",
        &url,
        "enqueue",
        "emails",
        "piped",
        "--payload",
        "@-",
    ]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"[1, 2]").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout).unwrap();
    assert_eq!(job(&url, id.trim())["payload"], serde_json::json!([1, 2]));
}

#[test]
fn exec_enqueues_an_exec_job() {
    let redis = TestRedis::start();
    let url = redis.url();
    let answer = run(
        Some(&url),
        &[
            "exec",
            "tasks",
            "--env",
            "GREETING=hi",
            "--cwd",
            "/tmp",
            "--json",
            "--",
            "echo",
            "-n",
            "a b",
        ],
    )
    .json();
    assert_eq!(answer["state"], "pending");
    let stored = job(&url, answer["id"].as_str().unwrap());
    assert_eq!(stored["kind"], "exec");
    assert_eq!(stored["queue"], "tasks");
    assert_eq!(
        stored["payload"],
        serde_json::json!({"cmd": ["echo", "-n", "a b"], "env": {"GREETING": "hi"}, "cwd": "/tmp"})
    );

    let human = run(Some(&url), &["exec", "tasks", "--", "date"]).ok();
    let stored = job(&url, human.stdout.trim());
    assert_eq!(stored["payload"], serde_json::json!({"cmd": ["date"]}));
}

#[test]
fn job_shows_one_job() {
    let redis = TestRedis::start();
    let url = redis.url();
    let id = run(
        Some(&url),
        &[
            "enqueue",
            "q",
            "k",
            "--payload",
            r#"{"n": 1}"#,
            "--priority",
            "5",
        ],
    )
    .ok()
    .stdout
    .trim()
    .to_owned();

    let human = run(Some(&url), &["job", &id]).ok().stdout;
    for line in [
        format!("id        {id}"),
        "queue     q".to_owned(),
        "kind      k".to_owned(),
        "state     pending".to_owned(),
        "attempt   0/25".to_owned(),
        "priority  5".to_owned(),
        r#"payload   {"n":1}"#.to_owned(),
    ] {
        assert!(human.contains(&line), "{line:?} in:\n{human}");
    }

    let json = run(Some(&url), &["job", &id, "--json"]).json();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["queue"], "q");
    assert_eq!(json["state"], "pending");
    assert_eq!(json["attempt"], 0);
    assert!(json["created_at"].as_str().is_some());
}

#[test]
fn jobs_lists_a_queue() {
    let redis = TestRedis::start();
    let url = redis.url();
    let now: Vec<String> = (0..3)
        .map(|i| {
            run(
                Some(&url),
                &["enqueue", "q", "k", "--id", &format!("now-{i}")],
            )
            .ok()
            .stdout
            .trim()
            .to_owned()
        })
        .collect();
    run(
        Some(&url),
        &["enqueue", "q", "k", "--id", "later", "--in", "1h"],
    )
    .ok();

    let human = run(Some(&url), &["jobs", "q"]).ok().stdout;
    let lines: Vec<&str> = human.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATE"),
        "{human}"
    );
    assert_eq!(lines.len(), 5, "{human}");
    // Lifecycle order: scheduled before pending.
    assert!(
        lines[1].starts_with("later") && lines[1].contains("scheduled"),
        "{human}"
    );
    for id in &now {
        assert!(human.contains(id.as_str()), "{human}");
    }

    let all = run(Some(&url), &["jobs", "q", "--json"]).json();
    assert_eq!(all["queue"], "q");
    assert_eq!(all["jobs"].as_array().unwrap().len(), 4);

    let pending = run(Some(&url), &["jobs", "q", "--state", "pending", "--json"]).json();
    let ids: Vec<&str> = pending["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["now-0", "now-1", "now-2"]);

    let limited = run(
        Some(&url),
        &["jobs", "q", "--state", "pending", "--limit", "2", "--json"],
    )
    .json();
    assert_eq!(limited["jobs"].as_array().unwrap().len(), 2);

    let empty = run(Some(&url), &["jobs", "q", "--state", "dead"]).ok();
    assert_eq!(empty.stdout.trim(), "no dead jobs in queue q");
    let empty = run(Some(&url), &["jobs", "nothing-here", "--json"]).json();
    assert_eq!(empty["jobs"], serde_json::json!([]));
}

#[test]
fn stats_and_queue_ls() {
    let redis = TestRedis::start();
    let url = redis.url();
    assert!(
        run(Some(&url), &["stats"])
            .ok()
            .stdout
            .contains("no queues yet")
    );
    assert_eq!(
        run(Some(&url), &["queue", "ls", "--json"]).json()["queues"],
        serde_json::json!([])
    );
    assert_eq!(
        run(Some(&url), &["queue", "ls", "--json"]).json(),
        run(Some(&url), &["stats", "--json"]).json(),
        "queue ls --json sends the document of GET /api/queues and stats --json"
    );

    run(Some(&url), &["enqueue", "b-queue", "k"]).ok();
    run(Some(&url), &["enqueue", "a-queue", "k"]).ok();
    run(Some(&url), &["enqueue", "a-queue", "k", "--in", "1h"]).ok();

    let human = run(Some(&url), &["stats"]).ok().stdout;
    let lines: Vec<Vec<&str>> = human
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "QUEUE",
            "WAITING",
            "SCHEDULED",
            "PENDING",
            "ACTIVE",
            "RETRY",
            "DEAD",
            "COMPLETED",
            "CANCELLED",
            "PROCESSED",
            "FAILED",
            "PAUSED"
        ]
    );
    assert_eq!(
        lines[1],
        [
            "a-queue", "0", "1", "1", "0", "0", "0", "0", "0", "0", "0", "no"
        ]
    );
    assert_eq!(lines[2][..4], ["b-queue", "0", "0", "1"]);

    let json = run(Some(&url), &["stats", "--json"]).json();
    let queues = json["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0]["queue"], "a-queue");
    assert_eq!(queues[0]["states"]["scheduled"], 1);
    assert_eq!(queues[0]["states"]["pending"], 1);
    assert_eq!(queues[0]["states"]["dead"], 0);
    assert_eq!(queues[0]["processed"], 0);
    assert_eq!(queues[0]["paused"], false);

    assert_eq!(
        run(Some(&url), &["queue", "ls"]).ok().stdout,
        "a-queue\nb-queue\n"
    );
    let names = |json: serde_json::Value| -> Vec<String> {
        json["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["queue"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(run(Some(&url), &["queue", "ls", "--json"]).json()),
        ["a-queue", "b-queue"]
    );
}

#[test]
fn queue_pause_resume_and_purge() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    run(u, &["enqueue", "a", "k"]).ok();
    run(u, &["enqueue", "b", "k"]).ok();

    assert_eq!(
        run(u, &["queue", "pause", "b"]).ok().stdout,
        "queue b paused; running jobs finish, none start\n"
    );
    assert_eq!(
        run(u, &["queue", "pause", "b", "--json"]).json(),
        serde_json::json!({"queue": "b", "paused": true, "changed": false})
    );
    assert_eq!(run(u, &["queue", "ls"]).ok().stdout, "a\nb (paused)\n");
    let listed = run(u, &["queue", "ls", "--json"]).json();
    let paused: Vec<(&str, bool)> = listed["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_str().unwrap(), q["paused"].as_bool().unwrap()))
        .collect();
    assert_eq!(paused, [("a", false), ("b", true)]);
    let stats = run(u, &["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["paused"], false);
    assert_eq!(stats["queues"][1]["paused"], true);
    let human = run(u, &["stats"]).ok().stdout;
    assert!(human.lines().nth(2).unwrap().ends_with("yes"), "{human}");

    assert_eq!(
        run(u, &["queue", "resume", "b", "--json"]).json(),
        serde_json::json!({"queue": "b", "paused": false, "changed": true})
    );
    assert_eq!(
        run(u, &["queue", "resume", "b"]).ok().stdout,
        "queue b was not paused\n"
    );
    assert_eq!(run(u, &["queue", "ls"]).ok().stdout, "a\nb\n");

    run(u, &["enqueue", "a", "k", "--in", "1h", "--id", "later"]).ok();
    run(u, &["enqueue", "a", "k"]).ok();
    assert_eq!(
        run(u, &["queue", "purge", "a", "--state", "pending"])
            .ok()
            .stdout,
        "2\n"
    );
    assert_eq!(
        run(u, &["queue", "purge", "a", "--state", "pending", "--json"]).json(),
        serde_json::json!({"queue": "a", "state": "pending", "purged": 0})
    );
    assert_eq!(job(&url, "later")["state"], "scheduled");
    assert_eq!(
        run(
            u,
            &["queue", "purge", "a", "--state", "scheduled", "--json"]
        )
        .json()["purged"],
        1
    );

    run(u, &["queue", "purge", "a", "--state", "active"]).fails(2, "cancel them");
    run(u, &["queue", "purge", "a", "--state", "running"]).fails(2, "--state");
    run(u, &["queue", "purge", "a"]).fails(2, "--state");
}

#[test]
fn cancel_retry_delete() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    run(u, &["enqueue", "q", "k", "--id", "j1", "--in", "1h"]).ok();
    run(u, &["enqueue", "q", "k", "--id", "j2", "--in", "1h"]).ok();

    let cancelled = run(u, &["cancel", "j1", "--json"]).json();
    assert_eq!(
        cancelled,
        serde_json::json!({"id": "j1", "queue": "q", "action": "cancel", "previous_state": "scheduled", "state": "cancelled", "outcome": "cancelled"})
    );
    assert_eq!(job(&url, "j1")["state"], "cancelled");
    assert_eq!(run(u, &["cancel", "j2"]).ok().stdout, "job j2 cancelled\n");

    let retried = run(u, &["retry", "j1", "--json"]).json();
    assert_eq!(
        retried,
        serde_json::json!({"id": "j1", "queue": "q", "action": "retry", "previous_state": "cancelled", "state": "pending"})
    );
    assert_eq!(job(&url, "j1")["state"], "pending");
    assert_eq!(
        run(u, &["retry", "j2"]).ok().stdout,
        "job j2 (cancelled) is pending again\n"
    );

    let deleted = run(u, &["delete", "j1", "--json"]).json();
    assert_eq!(
        deleted,
        serde_json::json!({"id": "j1", "queue": "q", "action": "delete", "previous_state": "pending", "state": null, "deleted": true})
    );
    assert_eq!(
        run(u, &["delete", "j2"]).ok().stdout,
        "job j2 (pending) deleted\n"
    );
    for verb in ["job", "retry", "delete", "cancel", "kill"] {
        run(u, &[verb, "j1"]).fails(1, "no job j1");
    }
}

#[test]
fn kill_sends_a_waiting_job_to_dead() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    run(u, &["enqueue", "q", "k", "--id", "j1", "--in", "1h"]).ok();
    run(u, &["enqueue", "q", "k", "--id", "j2"]).ok();

    let killed = run(u, &["kill", "j1", "--json"]).json();
    assert_eq!(
        killed,
        serde_json::json!({"id": "j1", "queue": "q", "action": "kill", "previous_state": "scheduled", "state": "dead"})
    );
    assert_eq!(job(&url, "j1")["state"], "dead");
    assert_eq!(job(&url, "j1")["last_error"], "killed by hand");
    assert_eq!(
        run(u, &["kill", "j2"]).ok().stdout,
        "job j2 (pending) is dead\n"
    );
    run(u, &["kill", "j2"]).fails(
        1,
        "only waiting, scheduled, pending or retry jobs can be killed",
    );
    assert_eq!(
        run(u, &["retry", "j2", "--json"]).json()["previous_state"],
        "dead"
    );
}

#[test]
fn config_show_redacts_secrets_and_follows_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tickq.toml");
    std::fs::write(
        &file,
        r#"
redis = "redis://app:file-secret@file-host:6379/2"
node = "from-file"

[worker]
queues = { critical = 3, default = 1 }
concurrency = 4

[http]
listen = "0.0.0.0:7700"
token = "token-secret"

[exec]
allow = ["echo", "/usr/bin/date"]

[[cron]]
name = "nightly"
schedule = "0 2 * * *"
timezone = "Asia/Shanghai"
overlap = "forbid"
tasks = [ { kind = "exec", cmd = ["echo", "hi"] } ]
"#,
    )
    .unwrap();
    let show = |extra: &[&str], env: Option<&str>| {
        let mut cmd = tickq();
        cmd.arg("--config")
            .arg(&file)
            .args(["config", "show"])
            .args(extra);
        if let Some(url) = env {
            cmd.env("TICKQ_REDIS_URL", url);
        }
        run_cmd(&mut cmd)
    };

    // File only.
    let json = show(&["--json"], None).json();
    assert_eq!(json["redis"], "redis://app:***@file-host:6379/2");
    assert_eq!(
        json["redis_from"],
        format!("config file {}", file.display())
    );
    assert_eq!(json["node"], "from-file");
    assert_eq!(
        json["worker"]["queues"],
        serde_json::json!({"critical": 3, "default": 1})
    );
    assert_eq!(json["worker"]["concurrency"], 4);
    assert_eq!(
        json["http"],
        serde_json::json!({"listen": "0.0.0.0:7700", "token": "***"})
    );
    assert_eq!(
        json["exec"]["allow"],
        serde_json::json!(["echo", "/usr/bin/date"])
    );
    assert_eq!(json["cron"][0]["name"], "nightly");
    assert_eq!(json["cron"][0]["catchup"], "latest");
    assert_eq!(
        json["cron"][0]["tasks"][0],
        serde_json::json!({"kind": "exec", "cmd": ["echo", "hi"]})
    );

    // Env beats file; flags beat both.
    let json = show(&["--json"], Some("redis://:env-secret@env-host:1")).json();
    assert_eq!(json["redis"], "redis://:***@env-host:1");
    assert_eq!(json["redis_from"], "TICKQ_REDIS_URL");
    let json = show(
        &[
            "--json",
            "--redis",
            "redis://flag-host:2",
            "--node",
            "from-flag",
            "--queues",
            "only=2",
            "--concurrency",
            "9",
            "--listen",
            "127.0.0.1:9000",
            "--data",
            "/var/lib/tickq",
        ],
        Some("redis://env-host:1"),
    )
    .json();
    assert_eq!(json["redis"], "redis://flag-host:2");
    assert_eq!(json["redis_from"], "--redis");
    assert_eq!(json["node"], "from-flag");
    assert_eq!(json["worker"]["queues"], serde_json::json!({"only": 2}));
    assert_eq!(json["worker"]["concurrency"], 9);
    assert_eq!(json["http"]["listen"], "127.0.0.1:9000");
    assert_eq!(json["data"], "/var/lib/tickq");

    // The text form is a config file again, without the secrets.
    let human = show(&[], None).ok().stdout;
    assert!(!human.contains("secret"), "{human}");
    let parsed: toml::Table = human.parse().unwrap_or_else(|e| panic!("{e}\n{human}"));
    assert_eq!(parsed["node"].as_str(), Some("from-file"));
    assert_eq!(parsed["http"]["token"].as_str(), Some("***"));
    assert_eq!(
        parsed["cron"][0]["timezone"].as_str(),
        Some("Asia/Shanghai")
    );
}

#[test]
fn enqueue_unique_for_makes_one_job_until_it_ends() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    let args = [
        "enqueue",
        "q",
        "report",
        "--payload",
        r#"{"day": 1}"#,
        "--unique-for",
        "1h",
    ];
    let first = run(u, &args).ok().stdout.trim().to_owned();
    let dup = run(u, &args).fails(1, "holds the unique key");
    assert!(dup.stderr.contains(&first), "{dup:?}");
    // The same kind with another payload is another job; a --unique-key groups any payload.
    let other = [&args[..4], &[r#"{"day": 2}"#, "--unique-for", "1h"]].concat();
    run(u, &other).ok();
    let keyed = |payload: &str| {
        run(
            u,
            &[
                "enqueue",
                "q",
                "report",
                "--payload",
                payload,
                "--unique-for",
                "1h",
                "--unique-key",
                "nightly",
            ],
        )
    };
    keyed("1").ok();
    keyed("2").fails(1, "holds the unique key");

    // Once the job ends, the key is free again.
    run(u, &["cancel", &first]).ok();
    let again = run(u, &args).ok().stdout.trim().to_owned();
    assert_ne!(again, first);
}

#[test]
fn queue_limit_shows_and_changes_limits() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    run(u, &["enqueue", "a", "k"]).ok();
    assert_eq!(
        run(u, &["queue", "limit", "a"]).ok().stdout,
        "queue a: no limits\n"
    );
    assert_eq!(
        run(u, &["queue", "limit", "a", "--concurrency", "3"])
            .ok()
            .stdout,
        "queue a: concurrency 3\n"
    );
    // A flag changes its own limit and keeps the others.
    assert_eq!(
        run(u, &["queue", "limit", "a", "--rate", "50/s"])
            .ok()
            .stdout,
        "queue a: concurrency 3, rate 50/1s\n"
    );
    assert_eq!(
        run(u, &["queue", "limit", "a", "--json"]).json(),
        serde_json::json!({"queue": "a", "limits": {
            "concurrency": 3, "rate": {"jobs": 50, "per_ms": 1000}}})
    );
    assert_eq!(
        run(u, &["queue", "ls"]).ok().stdout,
        "a (concurrency 3, rate 50/1s)\n"
    );
    assert_eq!(
        run(u, &["queue", "ls", "--json"]).json()["queues"][0]["limits"],
        serde_json::json!({"concurrency": 3, "rate": {"jobs": 50, "per_ms": 1000}})
    );
    assert_eq!(
        run(u, &["stats", "--json"]).json()["queues"][0]["limits"]["concurrency"],
        3
    );
    assert_eq!(
        run(u, &["queue", "limit", "a", "--concurrency", "none"])
            .ok()
            .stdout,
        "queue a: rate 50/1s\n"
    );
    assert_eq!(
        run(u, &["queue", "limit", "a", "--clear"]).ok().stdout,
        "queue a: no limits\n"
    );
    assert_eq!(run(u, &["queue", "ls"]).ok().stdout, "a\n");
}

#[test]
fn verbs_work_against_a_cluster() {
    let cluster = tickq_testkit::TestCluster::start(tickq_testkit::TestCluster::DEFAULT_PRIMARIES);
    let url = cluster.cluster_url();
    let u = Some(url.as_str());
    let mut ids = Vec::new();
    for queue in ["alpha", "beta", "gamma", "delta"] {
        ids.push(
            run(u, &["enqueue", queue, "k"])
                .ok()
                .stdout
                .trim()
                .to_owned(),
        );
    }
    let stats = run(u, &["stats", "--json"]).json();
    let queues = stats["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 4);
    assert!(
        queues.iter().all(|q| q["states"]["pending"] == 1),
        "{stats}"
    );
    for id in &ids {
        assert_eq!(run(u, &["job", id, "--json"]).json()["state"], "pending");
    }
    run(u, &["queue", "limit", "beta", "--concurrency", "2"]).ok();
    run(u, &["queue", "pause", "gamma"]).ok();
    assert_eq!(
        run(u, &["queue", "ls"]).ok().stdout,
        "alpha\nbeta (concurrency 2)\ndelta\ngamma (paused)\n"
    );
    // A locked program, with its fenced write going to the same cluster.
    let script = format!(
        "{} lock set nightly k v && echo fence=$TICKQ_FENCE",
        crate::util::BIN
    );
    let out = run(u, &["lock", "run", "nightly", "--", "sh", "-c", &script]);
    let out = out.ok();
    let fence = out.stdout.trim().rsplit("fence=").next().unwrap();
    assert!(fence.parse::<u64>().is_ok_and(|f| f > 0), "{out:?}");
    assert_eq!(
        run(u, &["lock", "get", "nightly", "k", "--json"]).json()["value"],
        "v"
    );
}

#[test]
fn a_sentinel_url_without_a_master_name_is_refused_with_a_clear_message() {
    run(Some("redis-sentinel://127.0.0.1:26379"), &["stats"]).fails(2, "master name is missing");
}

#[test]
fn verbs_work_through_sentinel() {
    let set = tickq_testkit::TestSentinel::start();
    let url = set.url();
    let u = Some(url.as_str());
    let id = run(u, &["enqueue", "alpha", "k"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let stats = run(u, &["stats", "--json"]).json();
    let queues = stats["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 1, "{stats}");
    assert_eq!(queues[0]["states"]["pending"], 1, "{stats}");
    // On the master itself, not somewhere else.
    let direct = set.master().url();
    assert_eq!(
        run(Some(&direct), &["job", &id, "--json"]).json()["state"],
        "pending"
    );
}
