//! `tickq server` as a process: exec jobs end to end, signals, HTTP, the embedded Redis.

use crate::util::{Server, free_port, process_gone, run, wait_for, wait_state};
use std::io::{Read as _, Write as _};
use std::time::Duration;
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

fn config(allow: &[&str]) -> String {
    let allow: Vec<String> = allow.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "[worker]\nqueues = {{ default = 1, other = 2 }}\n\n[exec]\nallow = [{}]\n",
        allow.join(", ")
    )
}

fn exec(url: &str, opts: &[&str], cmd: &[&str]) -> String {
    let args = [&["exec", "default"][..], opts, &["--"], cmd].concat();
    run(Some(url), &args).ok().stdout.trim().to_owned()
}

/// A job document's due time, Unix ms.
fn due_ms(job: &serde_json::Value) -> i64 {
    job["due_at"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(|| panic!("job has no due_at: {job}"))
        .as_millisecond()
}

#[test]
fn delayed_and_retried_exec_jobs_see_when_they_were_due() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(Some(&config(&["sh"])), &["--redis", &url], &[]);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("due.txt");
    let out_env = format!("OUT={}", file.display());

    // Delayed: the end of its delay, at full precision (never before the asked instant).
    let before = jiff::Timestamp::now().as_millisecond();
    let id = exec(
        &url,
        &["--in", "300ms", "--env", &out_env],
        &["sh", "-c", "echo \"$TICKQ_SCHEDULED_AT\" > \"$OUT\""],
    );
    let job = wait_state(&url, &id, "completed", LIMIT);
    let seen: i64 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(seen, due_ms(&job));
    assert!(
        seen >= before + 300,
        "due {seen} is before {before} + 300 ms"
    );

    // Scheduled with --at: exactly that instant.
    let at = jiff::Timestamp::now().as_millisecond() + 200;
    let id = exec(
        &url,
        &["--at", &at.to_string(), "--env", &out_env],
        &["sh", "-c", "echo \"$TICKQ_SCHEDULED_AT\" > \"$OUT\""],
    );
    wait_state(&url, &id, "completed", LIMIT);
    let seen: i64 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(seen, at);

    // A retry: the second attempt was due at the end of its backoff, after the first ran.
    let id = exec(
        &url,
        &["--max-attempts", "2", "--env", &out_env],
        &[
            "sh",
            "-c",
            "echo \"$TICKQ_ATTEMPT $TICKQ_SCHEDULED_AT $(date +%s%3N)\" >> \"$OUT\"; \
             [ \"$TICKQ_ATTEMPT\" = 2 ]",
        ],
    );
    let job = wait_state(&url, &id, "completed", LIMIT);
    let text = std::fs::read_to_string(&file).unwrap();
    let runs: Vec<Vec<i64>> = text
        .lines()
        .filter(|l| l.split(' ').count() == 3)
        .map(|l| l.split(' ').map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(runs.len(), 2, "{text}");
    assert_eq!(runs[1][0], 2, "{text}");
    assert_eq!(runs[1][1], due_ms(&job), "{text}");
    assert!(
        runs[1][1] > runs[0][1],
        "the retry's due time is its backoff's end: {text}"
    );
}

#[test]
fn runs_an_exec_job_end_to_end() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(
        Some(&config(&["sh"])),
        &["--redis", &url, "--node", "node-a"],
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("env.txt");

    let id = exec(
        &url,
        &["--env", &format!("OUT={}", file.display())],
        &[
            "sh",
            "-c",
            "env | grep ^TICKQ_ | sort > \"$OUT\"; echo done",
        ],
    );
    let job = wait_state(&url, &id, "completed", LIMIT);
    assert_eq!(job["result"], "done");

    let text = std::fs::read_to_string(&file).unwrap();
    let vars: std::collections::BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["TICKQ_JOB_ID"], id);
    assert_eq!(vars["TICKQ_QUEUE"], "default");
    assert_eq!(vars["TICKQ_ATTEMPT"], "1");
    assert_eq!(vars["TICKQ_FENCE"], job["fence"].to_string());
    assert_eq!(vars["TICKQ_NODE"], "node-a");
    assert!(!vars.contains_key("TICKQ_CRON"), "{text}");
    // A job due at once was due when it was enqueued.
    assert_eq!(
        vars["TICKQ_SCHEDULED_AT"],
        due_ms(&job).to_string(),
        "{text}"
    );

    // env, cwd and stdin from the payload.
    let payload = serde_json::json!({
        "cmd": ["sh", "-c", "read line; echo \"$line $GREETING $(pwd)\""],
        "env": {"GREETING": "hello"},
        "cwd": "/",
        "stdin": "from-stdin\n",
    });
    let id = run(
        Some(&url),
        &[
            "enqueue",
            "default",
            "exec",
            "--payload",
            &payload.to_string(),
        ],
    )
    .ok()
    .stdout
    .trim()
    .to_owned();
    let job = wait_state(&url, &id, "completed", LIMIT);
    assert_eq!(job["result"], "from-stdin hello /");

    // A failing program: exit status and stderr tail are the error; retried by policy.
    let id = exec(
        &url,
        &["--max-attempts", "1"],
        &[
            "sh",
            "-c",
            "echo to-stdout; echo broken pipe dream >&2; exit 3",
        ],
    );
    let job = wait_state(&url, &id, "dead", LIMIT);
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("exit status 3"), "{error}");
    assert!(error.contains("broken pipe dream"), "{error}");

    // A program killed by a signal.
    let id = exec(&url, &["--max-attempts", "1"], &["sh", "-c", "kill -9 $$"]);
    let job = wait_state(&url, &id, "dead", LIMIT);
    assert!(
        job["last_error"].as_str().unwrap().contains("signal 9"),
        "{job}"
    );
}

#[test]
fn programs_off_the_allow_list_are_not_run() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(
        Some(&config(&["echo"])),
        &["--redis", &url, "--node", "n1"],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");

    // `sh` is not allowed, and `/bin/echo` is not `echo`: matching is exact.
    for cmd in [
        vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("touch {}", marker.display()),
        ],
        vec!["/bin/echo".to_owned(), "hi".to_owned()],
    ] {
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let id = exec(&url, &[], &cmd);
        let job = wait_state(&url, &id, "dead", LIMIT);
        assert_eq!(job["attempt"], 1, "killed, not retried: {job}");
        let error = job["last_error"].as_str().unwrap();
        assert!(
            error.contains("not on the [exec] allow list of node n1"),
            "{error}"
        );
    }
    assert!(!marker.exists(), "a program off the allow list ran");

    let id = exec(&url, &[], &["echo", "allowed"]);
    assert_eq!(
        wait_state(&url, &id, "completed", LIMIT)["result"],
        "allowed"
    );
}

#[test]
fn exec_is_off_without_an_allow_list() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(None, &["--redis", &url, "--node", "n2"], &[]);
    let id = exec(&url, &[], &["echo", "hi"]);
    let job = wait_state(&url, &id, "dead", LIMIT);
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("exec is off on node n2"), "{error}");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(Some(&config(&["sh"])), &["--redis", &url], &[]);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The program starts a grandchild and waits; both must die.
    let id = exec(
        &url,
        &["--timeout", "500ms", "--max-attempts", "1"],
        &[
            "sh",
            "-c",
            &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
        ],
    );
    let job = wait_state(&url, &id, "dead", LIMIT);
    assert!(
        job["last_error"].as_str().unwrap().contains("timed out"),
        "{job}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(LIMIT, "the grandchild to die", || {
        process_gone(pid).then_some(())
    });
}

#[test]
fn sigterm_drains_running_jobs_and_exits_0() {
    let redis = TestRedis::start();
    let url = redis.url();
    let mut server = Server::start(Some(&config(&["sh"])), &["--redis", &url], &[]);
    let id = exec(&url, &[], &["sh", "-c", "sleep 1; echo finished"]);
    wait_state(&url, &id, "active", LIMIT);
    server.signal(libc::SIGTERM);
    let status = server.wait(LIMIT);
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    // Drained: it finished where it ran, not handed back.
    let job = wait_state(&url, &id, "completed", LIMIT);
    assert_eq!(job["result"], "finished");
    assert!(server.log().contains("tickq server stopped"));
}

#[test]
fn healthz() {
    let redis = TestRedis::start();
    let url = redis.url();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Server::start(None, &["--redis", &url, "--listen", &addr], &[]);
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    server.signal(libc::SIGINT);
    assert_eq!(server.wait(LIMIT).code(), Some(0));
}

#[test]
fn a_given_address_with_no_redis_fails() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = Server::spawn(None, &["--redis", &url], &[]);
    assert_eq!(server.wait(LIMIT).code(), Some(1));
    let log = server.log();
    assert!(log.contains(&format!("no Redis at {url}")), "{log}");
    assert!(log.contains("pass --redis"), "{log}");

    // From the environment too, and even with the default port free: no embedded Redis.
    let mut server = Server::spawn(None, &[], &[("TICKQ_REDIS_URL", url.as_str())]);
    assert_eq!(server.wait(LIMIT).code(), Some(1));
    assert!(server.log().contains("no Redis at"), "{}", server.log());
}

#[test]
fn embedded_redis_when_no_address_is_given() {
    let port = free_port();
    let port_text = port.to_string();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let env = [("TICKQ_DEFAULT_REDIS_PORT", port_text.as_str())];
    let mut server = Server::start(None, &["--data", data_dir, "--log-format", "json"], &env);

    let started = server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("embedded redis-server"))
        })
        .unwrap_or_else(|| panic!("no embedded redis-server line in:\n{}", server.log()));
    let pid = started["pid"].as_i64().unwrap() as i32;
    assert!(!process_gone(pid));
    assert_eq!(
        started["data"].as_str().unwrap(),
        data.path().join("redis").to_str().unwrap()
    );

    // Commands find it at the (moved) default address with no flags.
    let url = format!("redis://127.0.0.1:{port}");
    let mut enqueue = crate::util::tickq();
    enqueue.envs(env).args(["enqueue", "q", "k", "--json"]);
    crate::util::run_cmd(&mut enqueue).json();
    let stats = run(Some(&url), &["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["queue"], "q");

    server.signal(libc::SIGTERM);
    assert_eq!(server.wait(LIMIT).code(), Some(0), "log:\n{}", server.log());
    assert!(process_gone(pid), "redis-server {pid} outlived the node");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(data.path().join("redis/appendonlydir").is_dir());
    let log = server.log();
    assert!(!log.contains("ERROR"), "a clean stop logs no error:\n{log}");
}

#[test]
fn no_redis_server_on_path_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let mut server = Server::spawn(
        None,
        &["--data", empty.path().to_str().unwrap()],
        &[
            ("TICKQ_DEFAULT_REDIS_PORT", port.as_str()),
            ("PATH", empty.path().to_str().unwrap()),
        ],
    );
    assert_eq!(server.wait(LIMIT).code(), Some(1));
    let log = server.log();
    assert!(log.contains("apt-get install redis-server"), "{log}");
}

#[test]
fn limits_from_the_config_are_set_for_every_node_at_start() {
    let redis = TestRedis::start();
    let url = redis.url();
    run(Some(&url), &["queue", "limit", "default", "--rate", "5/1s"]).ok();
    let config = "[limits.default]\nconcurrency = 2\n\n[limits.other]\nrate = \"50/1s\"\n";
    let mut server = Server::start(Some(config), &["--redis", &url], &[]);
    // The config replaces what Redis had (the rate of `default` goes).
    assert_eq!(
        run(Some(&url), &["queue", "ls"]).ok().stdout,
        "default (concurrency 2)\nother (rate 50/1s)\n"
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait(LIMIT).code(), Some(0));
}

#[test]
fn a_server_on_a_cluster_runs_exec_jobs_and_schedules() {
    let cluster = tickq_testkit::TestCluster::start(tickq_testkit::TestCluster::DEFAULT_PRIMARIES);
    let url = cluster.cluster_url();
    let config = format!(
        "{}\n[[cron]]\nname = \"tick\"\nschedule = \"@every 1s\"\nqueue = \"other\"\ntasks = [ {{ kind = \"exec\", cmd = [\"sh\", \"-c\", \"echo tick\"] }} ]\n",
        config(&["sh"])
    );
    let mut server = Server::start(Some(&config), &["--redis", &url], &[]);
    let id = exec(&url, &[], &["sh", "-c", "echo on-a-cluster"]);
    let job = wait_state(&url, &id, "completed", LIMIT);
    assert_eq!(job["result"], "on-a-cluster");
    wait_for(LIMIT, "a cron tick ran on the cluster", || {
        let stats = run(Some(&url), &["stats", "--json"]).json();
        let other = stats["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == "other")
            .cloned()?;
        (other["states"]["completed"].as_u64()? >= 1).then_some(())
    });
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait(LIMIT).code(), Some(0));
}

#[test]
fn a_sharded_queue_on_a_cluster_from_the_config_is_one_queue_to_the_cli() {
    let cluster = tickq_testkit::TestCluster::start(tickq_testkit::TestCluster::DEFAULT_PRIMARIES);
    let url = cluster.cluster_url();
    let config = "[worker]\nqueues = { hot = { weight = 1, shards = 3 } }\n\n[exec]\nallow = [\"sh\"]\n\n[limits.hot]\nconcurrency = 7\n";
    let mut server = Server::start(Some(config), &["--redis", &url], &[]);
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let args = ["exec", "hot", "--", "sh", "-c", &format!("echo {i}")];
            run(Some(&url), &args).ok().stdout.trim().to_owned()
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let job = wait_state(&url, id, "completed", LIMIT);
        assert_eq!(job["queue"], "hot");
        assert_eq!(job["result"], i.to_string());
    }
    // --shard-key routes; with --unique-for it is refused.
    let keyed: Vec<String> = (0..3)
        .map(|i| {
            let args = [
                "exec",
                "hot",
                "--shard-key",
                "k",
                "--",
                "sh",
                "-c",
                &format!("echo k{i}"),
            ];
            run(Some(&url), &args).ok().stdout.trim().to_owned()
        })
        .collect();
    for id in &keyed {
        wait_state(&url, id, "completed", LIMIT);
    }
    run(
        Some(&url),
        &[
            "enqueue",
            "hot",
            "k",
            "--unique-for",
            "1m",
            "--shard-key",
            "x",
        ],
    )
    .fails(2, "--shard-key");
    // One queue, with the limit as configured (split 3/2/2 over the shards, added back up).
    assert_eq!(
        run(Some(&url), &["queue", "ls"]).ok().stdout,
        "hot (concurrency 7)\n"
    );
    let stats = run(Some(&url), &["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["queue"], "hot");
    assert_eq!(stats["queues"][0]["processed"], 9);
    let parts = run(Some(&url), &["queue", "shards", "hot", "--json"]).json();
    let parts = parts.as_array().unwrap();
    assert_eq!(parts.len(), 4, "the base queue and three shards: {parts:?}");
    assert!(parts[0]["shard"].is_null());
    let processed: u64 = parts
        .iter()
        .map(|p| p["counts"]["processed"].as_u64().unwrap())
        .sum();
    assert_eq!(processed, 9);
    let text = run(Some(&url), &["queue", "shards", "hot"]).ok().stdout;
    assert!(
        text.starts_with("SHARD") && text.contains("hot#2"),
        "{text}"
    );
    // A node with another shard count refuses to start.
    let mut wrong = Server::spawn(None, &["--redis", &url, "--queues", "hot=1:2"], &[]);
    assert_eq!(wrong.wait(LIMIT).code(), Some(1), "{}", wrong.log());
    assert!(wrong.log().contains("3 shard"), "{}", wrong.log());
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait(LIMIT).code(), Some(0));
}
