//! The admin surface from both sides: each CLI verb and the same HTTP API call change Redis
//! alike and answer the same document; `tickq nodes` follows nodes coming and going.

use crate::util::{Server, free_port, http, run, wait_for};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tickq_testkit::TestRedis;

/// Jobs and a schedule, written the same way into each Redis.
fn seed(url: &str) {
    let u = Some(url);
    for (id, extra) in [
        ("s1", &["--in", "1h"][..]),
        ("s2", &["--in", "1h"][..]),
        ("s3", &["--in", "1h"][..]),
        ("p1", &[][..]),
        ("p2", &[][..]),
    ] {
        let mut args = vec![
            "enqueue",
            "q",
            "k",
            "--id",
            id,
            "--payload",
            r#"{"tenant": "acme"}"#,
        ];
        args.extend_from_slice(extra);
        run(u, &args).ok();
    }
    run(u, &["kill", "s3"]).ok();
    run(
        u,
        &[
            "cron",
            "add",
            "nightly",
            "0 2 * * *",
            "--queue",
            "q",
            "--kind",
            "report",
        ],
    )
    .ok();
}

/// What a verb changed, comparably: every tickq key with its type and content, without
/// times (which differ between two runs), the node registry, the history counters and the
/// keys of the queue the API's node works.
fn snapshot(redis: &TestRedis) -> BTreeMap<String, String> {
    let mut conn = redis.sync_conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("tickq:*").query(&mut conn).unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        if key.contains("{#nodes}")
            || key.contains("{elsewhere}")
            || key.contains(":history:")
            || key.ends_with(":wake")
        {
            continue;
        }
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let value = match kind.as_str() {
            "hash" => {
                let mut h: BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap();
                for value in h.values_mut() {
                    *value = normalize_ids(value);
                    if key.ends_with(":jobs") {
                        // A payload record: "<created> <due> <max> <priority>\n<data>".
                        *value = value.splitn(3, ' ').skip(2).collect();
                    } else if key.ends_with(":dues") {
                        *value = "<time>".into();
                    }
                }
                for time in [
                    "created",
                    "due",
                    "started",
                    "finished",
                    "lease",
                    "next",
                    "watermark",
                    "last_fired_at",
                    "updated",
                ] {
                    h.remove(time);
                }
                format!("{h:?}")
            }
            "zset" => {
                let mut m: Vec<String> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .unwrap();
                m.sort();
                format!("{m:?}")
            }
            "set" => {
                let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query(&mut conn).unwrap();
                m.sort();
                format!("{m:?}")
            }
            "string" => redis::cmd("GET").arg(&key).query(&mut conn).unwrap(),
            other => other.to_owned(),
        };
        let key = normalize_ids(&key);
        out.insert(key, normalize_ids(&value));
    }
    out
}

/// Manually triggered jobs carry Redis' time in their id and their `scheduled_at`: keep only
/// their shape.
fn normalize_ids(text: &str) -> String {
    let mut text = text.to_owned();
    for marker in ["manual-", r#""scheduled_at":""#] {
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(marker) {
            out.push_str(&rest[..at + marker.len()]);
            rest = rest[at + marker.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
            out.push('T');
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// Drop the fields that are times from a JSON document, recursively.
fn timeless(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| {
                !(k.ends_with("_at") || k.ends_with("_at_utc") || k == "lease_until")
            });
            for value in map.values_mut() {
                *value = timeless(value.take());
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                *item = timeless(item.take());
            }
        }
        serde_json::Value::String(s) => *s = normalize_ids(s),
        _ => {}
    }
    v
}

#[test]
fn every_admin_action_is_the_same_from_the_cli_and_the_api() {
    // (CLI arguments, HTTP method, path, body)
    let table: &[(&[&str], &str, &str, Option<&str>)] = &[
        (&["stats", "--json"], "GET", "/api/stats", None),
        (
            &["jobs", "q", "--state", "scheduled", "--json"],
            "GET",
            "/api/queues/q/jobs?state=scheduled",
            None,
        ),
        (
            &[
                "jobs", "q", "--state", "pending", "--search", "acme", "--json",
            ],
            "GET",
            "/api/queues/q/jobs?state=pending&q=acme",
            None,
        ),
        (&["job", "s1", "--json"], "GET", "/api/jobs/s1", None),
        (&["cron", "ls", "--json"], "GET", "/api/schedules", None),
        (&["lock", "ls", "--json"], "GET", "/api/locks", None),
        (&["kill", "s1", "--json"], "POST", "/api/jobs/s1/kill", None),
        (
            &["retry", "s1", "--json"],
            "POST",
            "/api/jobs/s1/retry",
            None,
        ),
        (
            &["cancel", "s2", "--json"],
            "POST",
            "/api/jobs/s2/cancel",
            None,
        ),
        (&["delete", "s2", "--json"], "DELETE", "/api/jobs/s2", None),
        (
            &["queue", "pause", "q", "--json"],
            "POST",
            "/api/queues/q/pause",
            None,
        ),
        (
            &["queue", "resume", "q", "--json"],
            "POST",
            "/api/queues/q/resume",
            None,
        ),
        (
            &[
                "queue",
                "limit",
                "q",
                "--concurrency",
                "3",
                "--rate",
                "50/1s",
                "--json",
            ],
            "PUT",
            "/api/queues/q/limits",
            Some(r#"{"concurrency": 3, "rate": "50/1s"}"#),
        ),
        (
            &[
                "bulk",
                "q",
                "retry",
                "--state",
                "dead",
                "--dry-run",
                "--json",
            ],
            "POST",
            "/api/queues/q/bulk",
            Some(r#"{"action": "retry", "state": "dead", "dry_run": true}"#),
        ),
        (
            &["bulk", "q", "retry", "--state", "dead", "--json"],
            "POST",
            "/api/queues/q/bulk",
            Some(r#"{"action": "retry", "state": "dead"}"#),
        ),
        (
            &[
                "bulk", "q", "kill", "--state", "pending", "--search", "acme", "--json",
            ],
            "POST",
            "/api/queues/q/bulk",
            Some(r#"{"action": "kill", "state": "pending", "q": "acme"}"#),
        ),
        (
            &["queue", "purge", "q", "--state", "dead", "--json"],
            "POST",
            "/api/queues/q/purge?state=dead",
            None,
        ),
        (
            &["cron", "pause", "nightly", "--json"],
            "POST",
            "/api/schedules/nightly/pause",
            None,
        ),
        (
            &["cron", "resume", "nightly", "--json"],
            "POST",
            "/api/schedules/nightly/resume",
            None,
        ),
        (
            &["cron", "trigger", "nightly", "--json"],
            "POST",
            "/api/schedules/nightly/trigger",
            None,
        ),
    ];
    let by_cli = TestRedis::start();
    let by_api = TestRedis::builder().tcp().start();
    seed(&by_cli.url());
    seed(&by_api.url());
    assert_eq!(snapshot(&by_cli), snapshot(&by_api), "the same seed");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // The node works another queue, so nothing runs the seeded jobs.
    let _server = Server::start(
        None,
        &[
            "--redis",
            &by_api.url(),
            "--listen",
            &addr,
            "--queues",
            "elsewhere=1",
        ],
        &[],
    );
    let cli_url = by_cli.url();
    for (args, method, path, body) in table {
        let cli = run(Some(&cli_url), args).ok().json();
        let (status, api) = http(&addr, method, path, *body);
        assert_eq!(status, 200, "{method} {path}: {api}");
        assert_eq!(
            timeless(cli),
            timeless(api),
            "`tickq {}` vs {method} {path}",
            args.join(" ")
        );
        assert_eq!(
            snapshot(&by_cli),
            snapshot(&by_api),
            "Redis after `tickq {}` vs {method} {path}",
            args.join(" ")
        );
    }
}

#[test]
fn nodes_lists_a_running_server_and_forgets_a_killed_one() {
    let redis = TestRedis::start();
    let url = redis.url();
    let server = Server::start(None, &["--redis", &url, "--node", "web-7"], &[]);
    let listed = wait_for(Duration::from_secs(20), "the node in `tickq nodes`", || {
        let nodes = run(Some(&url), &["nodes", "--json"]).ok().json();
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "web-7")
            .cloned()
    });
    assert_eq!(
        listed["queues"],
        serde_json::json!([{"queue": "default", "weight": 1}])
    );
    assert_eq!(listed["concurrency"], 16);
    assert!(run(Some(&url), &["nodes"]).ok().stdout.contains("web-7"));

    server.signal(libc::SIGKILL);
    let killed = Instant::now();
    let ttl = Duration::from_millis(listed["ttl_ms"].as_u64().unwrap());
    wait_for(
        ttl + Duration::from_secs(10),
        "the killed node to leave `tickq nodes`",
        || {
            let nodes = run(Some(&url), &["nodes", "--json"]).ok().json();
            nodes["nodes"].as_array().unwrap().is_empty().then_some(())
        },
    );
    println!(
        "a node killed -9 left the list after {:?} (expiry {ttl:?})",
        killed.elapsed()
    );
    assert!(killed.elapsed() <= ttl + Duration::from_secs(10));
}

#[test]
fn a_server_that_stops_cleanly_leaves_the_list_at_once() {
    let redis = TestRedis::start();
    let url = redis.url();
    let mut server = Server::start(None, &["--redis", &url, "--node", "web-8"], &[]);
    wait_for(Duration::from_secs(20), "the node listed", || {
        let nodes = run(Some(&url), &["nodes", "--json"]).ok().json();
        (!nodes["nodes"].as_array().unwrap().is_empty()).then_some(())
    });
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(30)).success());
    let nodes = run(Some(&url), &["nodes", "--json"]).ok().json();
    assert_eq!(nodes["nodes"], serde_json::json!([]));
}

#[test]
fn job_wait_exits_with_the_outcome() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    let config = "[worker]\nqueues = { default = 1 }\n\n[exec]\nallow = [\"true\", \"false\"]\n";
    let _server = Server::start(Some(config), &["--redis", &url], &[]);
    let ok = run(u, &["exec", "default", "--", "true"]).ok().stdout;
    let done = run(
        u,
        &["job", ok.trim(), "--wait", "--timeout", "30s", "--json"],
    )
    .ok()
    .json();
    assert_eq!(done["state"], "completed");
    let bad = run(
        u,
        &["exec", "default", "--max-attempts", "1", "--", "false"],
    )
    .ok()
    .stdout;
    // The job is shown as it ended, and the exit status says how.
    let dead = run(u, &["job", bad.trim(), "--wait", "--timeout", "30s"]);
    assert_eq!(dead.code, 1, "{dead:?}");
    assert!(dead.stderr.contains("ended dead"), "{dead:?}");
    assert!(dead.stdout.contains("state       dead"), "{dead:?}");
    let later = run(u, &["exec", "default", "--in", "1h", "--", "true"])
        .ok()
        .stdout;
    run(u, &["job", later.trim(), "--wait", "--timeout", "300ms"]).fails(1, "did not end within");
    run(u, &["job", "x", "--timeout", "1s"]).fails(2, "--wait");
}
