//! Signed exec jobs (`[exec] secret`): what a server with a secret refuses and runs, and that a
//! server without one ignores signatures.

use crate::util::{Server, run, run_cmd, tickq, wait_for, wait_state};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(10);
const SECRET: &str = "s3cret-s3cret-s3cret";

/// The signature as the docs define it, computed independently of the binary, for job `id`
/// in queue `default`.
fn sign(secret: &str, id: &str, cmd: &[&str]) -> String {
    let body = serde_json::json!({"cmd": cmd, "job": format!("id:{id}")});
    // serde_json::Value keeps keys sorted, which is not the canonical order: write it out.
    let canonical = format!(
        "tickq-exec-v2\n{{\"queue\":\"default\",\"job\":{},\"cmd\":{},\"env\":{{}},\"cwd\":null,\
         \"stdin\":null}}",
        body["job"], body["cmd"]
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(canonical.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn touch(path: &Path) -> Vec<String> {
    ["sh", "-c", &format!("echo ran >> '{}'", path.display())]
        .map(String::from)
        .to_vec()
}

/// `tickq enqueue default exec --payload PAYLOAD`, with `env` set; the job id.
fn enqueue(url: &str, payload: &serde_json::Value, env: &[(&str, &str)]) -> String {
    enqueue_as(url, "default", None, payload, env)
}

/// `tickq enqueue QUEUE exec [--id ID] --payload PAYLOAD`; the job id.
fn enqueue_as(
    url: &str,
    queue: &str,
    id: Option<&str>,
    payload: &serde_json::Value,
    env: &[(&str, &str)],
) -> String {
    let mut cmd = tickq();
    cmd.args(["--redis", url, "enqueue", queue, "exec", "--payload"])
        .arg(payload.to_string())
        .envs(env.iter().copied());
    if let Some(id) = id {
        cmd.args(["--id", id]);
    }
    run_cmd(&mut cmd).ok().stdout.trim().to_owned()
}

fn exec_with_secret(url: &str, cmd: &[String]) -> String {
    let mut c = tickq();
    c.args(["--redis", url, "exec", "default", "--"])
        .args(cmd)
        .env("TICKQ_EXEC_SECRET", SECRET);
    run_cmd(&mut c).ok().stdout.trim().to_owned()
}

fn dead_with(url: &str, id: &str, reason: &str) {
    let job = wait_state(url, id, "dead", LIMIT);
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "{job}");
    assert_eq!(job["attempt"], 1, "killed, not retried: {job}");
}

fn wait_file(path: &Path) {
    wait_for(LIMIT, &format!("{} to be written", path.display()), || {
        path.exists().then_some(())
    });
}

#[test]
fn a_server_with_a_secret_runs_only_signed_exec_jobs() {
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name);
    let cron_file = out("cron");
    let config = format!(
        "[worker]\nqueues = {{ default = 1, other = 1 }}\n\n[exec]\nallow = [\"sh\"]\nsecret = \
         \"{SECRET}\"\n\n[[cron]]\nname = \"signed\"\nschedule = \"@every 1s\"\ntasks = [ {{ \
         kind = \"exec\", cmd = {:?} }} ]\n",
        touch(&cron_file)
    );
    let server = Server::start(Some(&config), &["--redis", &url], &[]);

    // Unsigned, enqueued by a CLI without the secret: dead, and the program did not run.
    let unsigned = out("unsigned");
    let id = enqueue(&url, &serde_json::json!({"cmd": touch(&unsigned)}), &[]);
    dead_with(
        &url,
        &id,
        "exec job is not signed with this server's secret",
    );

    // Signed with another secret, or signed for another command (tampered).
    let wrong = out("wrong");
    let cmd = touch(&wrong);
    let cmd_ref: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let other = sign("another-secret-of-16", "wrong", &cmd_ref);
    let id = enqueue_as(
        &url,
        "default",
        Some("wrong"),
        &serde_json::json!({"cmd": cmd, "sig": other}),
        &[],
    );
    dead_with(&url, &id, "signature does not match");
    let tampered = out("tampered");
    let approved = sign(SECRET, "approved", &["sh", "-c", "true"]);
    let id = enqueue_as(
        &url,
        "default",
        Some("approved"),
        &serde_json::json!({"cmd": touch(&tampered), "sig": approved}),
        &[],
    );
    dead_with(&url, &id, "signature does not match");
    // The same signature with the command and job id it was made for runs: the test's
    // signing matches the binary's.
    let approved = sign(SECRET, "approved-2", &["sh", "-c", "true"]);
    let id = enqueue_as(
        &url,
        "default",
        Some("approved-2"),
        &serde_json::json!({"cmd": ["sh", "-c", "true"], "sig": approved}),
        &[],
    );
    wait_state(&url, &id, "completed", LIMIT);

    // `tickq exec` and `tickq enqueue ... exec` with the secret sign.
    let by_exec = out("exec");
    let id = exec_with_secret(&url, &touch(&by_exec));
    let job = wait_state(&url, &id, "completed", LIMIT);
    assert_eq!(
        job["payload"]["sig"].as_str().map(str::len),
        Some(64),
        "{job}"
    );

    // A signed job copied under another id, or into another queue, is killed unrun.
    let copy = job["payload"].clone();
    let again = enqueue_as(&url, "default", Some("copy-of-signed"), &copy, &[]);
    dead_with(&url, &again, "another job id or queue");
    // The same id in another queue: `tickq job ID` would find the original, so look in the
    // queue.
    let elsewhere = enqueue_as(&url, "other", Some(&id), &copy, &[]);
    let dead = wait_for(LIMIT, "the copy in queue other dead", || {
        let page = run(Some(&url), &["jobs", "other", "--state", "dead", "--json"]).json();
        let jobs = page["jobs"].as_array()?.clone();
        jobs.into_iter().find(|j| j["id"] == elsewhere.as_str())
    });
    let error = dead["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("another job id or queue"), "{dead}");
    let by_enqueue = out("enqueue");
    let id = enqueue(
        &url,
        &serde_json::json!({"cmd": touch(&by_enqueue), "sig": "0".repeat(64)}),
        &[("TICKQ_EXEC_SECRET", SECRET)],
    );
    wait_state(&url, &id, "completed", LIMIT);

    // `cron add --exec` with the secret (from a config file), and the [[cron]] task.
    let cli_config = out("cli.toml");
    std::fs::write(&cli_config, format!("[exec]\nsecret = \"{SECRET}\"\n")).unwrap();
    let added = out("added");
    let mut cmd = tickq();
    cmd.arg("--config")
        .arg(&cli_config)
        .args([
            "--redis",
            &url,
            "cron",
            "add",
            "added",
            "@every 1s",
            "--queue",
            "default",
            "--exec",
            "--",
        ])
        .args(touch(&added));
    run_cmd(&mut cmd).ok();
    wait_file(&added);
    wait_file(&cron_file);
    assert!(by_exec.exists() && by_enqueue.exists());
    for path in [&unsigned, &wrong, &tampered] {
        assert!(!path.exists(), "{} ran", path.display());
    }

    // The secret is never shown.
    let mut show = tickq();
    show.arg("--config")
        .arg(&cli_config)
        .args(["config", "show"]);
    let shown = run_cmd(&mut show).ok().stdout;
    assert!(shown.contains("secret = \"***\""), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!server.log().contains(SECRET));
    // A secret shorter than 16 bytes is refused.
    let mut short = tickq();
    short
        .args(["--redis", &url, "exec", "default", "--", "true"])
        .env("TICKQ_EXEC_SECRET", "short");
    run_cmd(&mut short).fails(2, "at least 16");
}

#[test]
fn a_server_without_a_secret_ignores_signatures() {
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(
        Some("[worker]\nqueues = { default = 1 }\n\n[exec]\nallow = [\"sh\"]\n"),
        &["--redis", &url],
        &[],
    );
    let signed = dir.path().join("signed");
    let unsigned = dir.path().join("unsigned");
    let bad = dir.path().join("bad");
    let ids = [
        exec_with_secret(&url, &touch(&signed)),
        enqueue(&url, &serde_json::json!({"cmd": touch(&unsigned)}), &[]),
        enqueue(
            &url,
            &serde_json::json!({"cmd": touch(&bad), "sig": "nonsense"}),
            &[],
        ),
    ];
    for id in ids {
        wait_state(&url, &id, "completed", LIMIT);
    }
    assert!(signed.exists() && unsigned.exists() && bad.exists());
    let _ = run;
}

#[test]
fn a_node_with_a_secret_but_no_allow_list_says_exec_is_off() {
    let redis = TestRedis::start();
    let url = redis.url();
    let config = format!("[worker]\nqueues = {{ default = 1 }}\n\n[exec]\nsecret = \"{SECRET}\"\n");
    let _server = Server::start(Some(&config), &["--redis", &url], &[]);
    let unsigned = enqueue(&url, &serde_json::json!({"cmd": ["true"]}), &[]);
    dead_with(&url, &unsigned, "exec is off");
    let signed = exec_with_secret(&url, &["true".to_owned()]);
    dead_with(&url, &signed, "exec is off");
}

#[test]
fn a_bad_secret_breaks_only_the_commands_that_sign_or_verify() {
    let redis = TestRedis::start();
    let url = redis.url();
    let short = [("TICKQ_EXEC_SECRET", "short")];
    let with = |args: &[&str]| {
        let mut cmd = tickq();
        cmd.args(["--redis", &url]).args(args).envs(short);
        run_cmd(&mut cmd)
    };
    with(&["stats"]).ok();
    with(&["enqueue", "default", "hello"]).ok();
    with(&["cron", "add", "k", "@daily", "--queue", "q", "--kind", "k"]).ok();
    with(&["cron", "ls"]).ok();
    with(&["queue", "ls"]).ok();
    for args in [
        &["exec", "default", "--", "true"][..],
        &[
            "enqueue",
            "default",
            "exec",
            "--payload",
            r#"{"cmd":["true"]}"#,
        ],
        &[
            "cron", "add", "e", "@daily", "--queue", "q", "--exec", "--", "true",
        ],
        &["config", "show"],
    ] {
        with(args).fails(2, "TICKQ_EXEC_SECRET");
    }
}
