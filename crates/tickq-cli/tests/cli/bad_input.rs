//! Bad input: a clear message, the right exit status, and nothing changed in Redis.

use crate::util::{free_port, run, run_cmd, tickq};
use tickq_testkit::TestRedis;

fn keys(redis: &TestRedis) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.sync_conn())
        .unwrap()
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    let redis = TestRedis::start();
    let url = redis.url();
    let u = Some(url.as_str());
    for (args, needle) in [
        (
            &["enqueue", "q", "k", "--in", "5 minutes"][..],
            "--in: invalid duration",
        ),
        (
            &["enqueue", "q", "k", "--in", "10"],
            "use a number with a unit",
        ),
        (
            &["enqueue", "q", "k", "--timeout", "0s"],
            "--timeout must be greater than zero",
        ),
        (
            &["enqueue", "q", "k", "--at", "tomorrow"],
            "--at: invalid time",
        ),
        (
            &["enqueue", "q", "k", "--at", "2026-11-22T02:00:00"],
            "RFC 3339",
        ),
        (
            &["enqueue", "q", "k", "--payload", "{user: 7}"],
            "not valid JSON",
        ),
        (
            &["enqueue", "q", "k", "--payload", "@/no/such/file.json"],
            "cannot read the file",
        ),
        (
            &["enqueue", "q", "k", "--in", "1s", "--at", "1700000000000"],
            "cannot be used with",
        ),
        (&["enqueue", "q{x}", "k"], "invalid queue name"),
        (&["enqueue", "q", "k", "--priority", "5000"], "out of range"),
        (&["enqueue", "q", "k", "--max-attempts", "0"], "at least 1"),
        (
            &["enqueue", "q", "k", "--id", "has space"],
            "invalid job id",
        ),
        (
            &["enqueue", "q", "k", "--unique-for", "5x"],
            "--unique-for: invalid duration",
        ),
        (
            &["enqueue", "q", "k", "--unique-for", "0s"],
            "--unique-for must be greater than zero",
        ),
        (&["enqueue", "q", "k", "--unique-key", "k"], "--unique-for"),
        (&["queue", "limit", "q", "--concurrency", "0"], "at least 1"),
        (
            &["queue", "limit", "q", "--concurrency", "x"],
            "--concurrency",
        ),
        (&["queue", "limit", "q", "--rate", "50"], "invalid rate"),
        (&["queue", "limit", "q", "--rate", "0/1s"], "at least 1 job"),
        (&["queue", "limit", "q", "--rate", "5/1y"], "invalid rate"),
        (
            &["queue", "limit", "q", "--clear", "--rate", "5/s"],
            "cannot be used with",
        ),
        (&["queue", "limit", "q{x}"], "invalid queue name"),
        (
            &["enqueue", "q", "exec", "--payload", r#"{"cmd": "echo hi"}"#],
            "exec job's payload",
        ),
        (&["exec", "q", "--", ""], "program"),
        (&["exec", "q", "--env", "PATH=/tmp", "--", "echo"], "PATH"),
        (
            &["exec", "q", "--env", "NOEQUALS", "--", "echo"],
            "NAME=VALUE",
        ),
        (&["exec", "q", "echo"], "PROGRAM"),
        (&["jobs", "q", "--state", "done"], "unknown job state"),
        (&["jobs", "q", "--limit", "0"], "--limit"),
        (&["nosuchverb"], "unrecognized subcommand"),
    ] {
        let out = run(u, args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(needle),
            "{args:?} should say {needle:?}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    assert_eq!(
        keys(&redis),
        Vec::<String>::new(),
        "bad input must not touch Redis"
    );
}

#[test]
fn bad_or_unreachable_redis() {
    run(Some("http://localhost:6379"), &["stats"]).fails(2, "invalid Redis URL");
    run(Some("localhost:6379"), &["stats"]).fails(2, "invalid Redis URL");
    let mut env_url = tickq();
    env_url.env("TICKQ_REDIS_URL", "nonsense").arg("stats");
    run_cmd(&mut env_url).fails(2, "TICKQ_REDIS_URL");

    // The password never shows up in messages.
    let port = free_port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let out = run(Some(&url), &["stats", "--json"]).fails(1, "no Redis at");
    assert!(
        out.stderr
            .contains("start one with `redis-server` or pass --redis"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("hunter2"), "{out:?}");

    run(Some("redis+unix:///no/such/redis.sock"), &["queue", "ls"]).fails(1, "no Redis at");
}

#[test]
fn unknown_job_ids_fail_with_exit_1() {
    let redis = TestRedis::start();
    let url = redis.url();
    run(Some(&url), &["enqueue", "q", "k"]).ok();
    for verb in ["job", "retry", "delete", "cancel"] {
        run(Some(&url), &[verb, "no-such-job", "--json"]).fails(1, "no job no-such-job");
    }
}

#[test]
fn config_file_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let shown = file.display().to_string();
    let check = |text: &str, needles: &[&str]| {
        std::fs::write(&file, text).unwrap();
        for verb in [&["config", "show"][..], &["server"]] {
            let mut cmd = tickq();
            cmd.arg("--config").arg(&file).args(verb);
            let out = run_cmd(&mut cmd).fails(2, &shown);
            for needle in needles {
                assert!(
                    out.stderr.contains(needle),
                    "{text:?} should say {needle:?}: {out:?}"
                );
            }
        }
    };
    check("[worker]\nconcurency = 4\n", &["concurency"]);
    check("redis_url = \"redis://x\"\n", &["redis_url"]);
    check("[exec]\nallow = [\"echo\"]\nsigned = true\n", &["signed"]);
    check(
        "[[cron]]\nname = \"n\"\nschedule = \"@daily\"\ntasks = [ { kind = \"exec\", cmd = [\"x\"], shell = true } ]\n",
        &["shell"],
    );
    check(
        "[worker]\nqueues = { default = 0 }\n",
        &["[worker] queues", "at least 1"],
    );
    check("[http]\nlisten = \"0.0.0.0:7700\"\n", &["token"]);
    check(
        "[[cron]]\nname = \"n\"\nschedule = \"* *\"\ntasks = [ { kind = \"k\" } ]\n",
        &["schedule"],
    );

    let mut cmd = tickq();
    cmd.args(["--config", "/no/such/tickq.toml", "config", "show"]);
    run_cmd(&mut cmd).fails(2, "/no/such/tickq.toml");
}

#[test]
fn server_flags_are_checked() {
    for (args, needle) in [
        (&["--queues", "a=0"][..], "--queues"),
        (&["--queues", "a{b}=1"], "invalid queue name"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--listen", "0.0.0.0:7700"], "token"),
        (&["--listen", "localhost"], "IP:PORT"),
        (&["--node", "has space"], "node name"),
    ] {
        let out = run(Some("redis://127.0.0.1:1"), &[&["server"], args].concat());
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(needle),
            "{args:?} should say {needle:?}: {out:?}"
        );
    }
}

#[test]
fn enqueue_into_a_full_redis_exits_1_saying_redis_is_full_and_writes_nothing() {
    let redis = TestRedis::builder()
        .appendonly(false)
        .extra_args(["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])
        .start();
    let mut conn = redis.sync_conn();
    let big = "x".repeat(256 * 1024);
    for i in 0.. {
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("filler-{i}"))
            .arg(&big)
            .query(&mut conn);
        if set.is_err() {
            break;
        }
        assert!(i < 1000, "8 MiB never filled up");
    }
    let before = keys(&redis);
    let url = redis.url();

    let out = run(Some(&url), &["enqueue", "q", "k"]).fails(1, "Redis is full");

    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert_eq!(keys(&redis), before);
}

#[test]
fn memory_high_water_from_the_config_file_refuses_enqueues_above_it_and_must_be_a_fraction() {
    let redis = TestRedis::builder()
        .appendonly(false)
        .extra_args(["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"])
        .start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tickq.toml");
    let config_arg = config.to_str().unwrap();

    std::fs::write(&config, "memory_high_water = 1.5\n").unwrap();
    run(Some(&url), &["--config", config_arg, "enqueue", "q", "k"])
        .fails(2, "memory_high_water in config file");

    // An empty Redis uses a few MiB of 64: above a mark of 1%, below one of 90%.
    std::fs::write(&config, "memory_high_water = 0.01\n").unwrap();
    run(Some(&url), &["--config", config_arg, "enqueue", "q", "k"]).fails(1, "Redis is full");
    assert!(keys(&redis).is_empty(), "{:?}", keys(&redis));
    std::fs::write(&config, "memory_high_water = 0.9\n").unwrap();
    run(Some(&url), &["--config", config_arg, "enqueue", "q", "k"]).ok();
}
