//! Safe deployments: the quick tour over TLS with a private CA, with client certificates, and
//! as a least-privilege ACL user; certificate problems named as such.

use crate::util::{Server, run_env, wait_for};
use std::time::Duration;
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

/// The README's tour against `url`, with `env` for every command and `config` (TOML) for the
/// server: an exec job run by a real `tickq server`, a cron schedule that fires there, `lock
/// run`, and stats that count both jobs. Answers the server's log.
fn quick_tour(url: &str, env: &[(&str, &str)], config: &str) -> String {
    let config = format!("[exec]\nallow = [\"sh\"]\n{config}");
    let server = Server::start(Some(&config), &["--redis", url], env);
    let tickq = |args: &[&str]| run_env(Some(url), args, env);

    let id = tickq(&["exec", "default", "--", "sh", "-c", "echo hello"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    wait_for(LIMIT, "the exec job completed", || {
        let job = tickq(&["job", &id, "--json"]).json();
        (job["state"] == "completed").then_some(())
    });
    assert_eq!(tickq(&["job", &id, "--json"]).json()["result"], "hello");

    tickq(&[
        "cron",
        "add",
        "tour",
        "@every 1s",
        "--queue",
        "default",
        "--exec",
        "--",
        "sh",
        "-c",
        "echo tick",
    ])
    .ok();
    wait_for(LIMIT, "the schedule fired and its job ran", || {
        let stats = tickq(&["stats", "--json"]).json();
        let completed = stats["queues"][0]["states"]["completed"].as_u64()?;
        (completed >= 2).then_some(())
    });
    let ls = tickq(&["cron", "ls", "--json"]).json();
    assert!(ls["schedules"][0]["fired"].as_u64().unwrap() >= 1, "{ls}");

    let lock = tickq(&[
        "lock",
        "run",
        "tour",
        "--",
        "sh",
        "-c",
        "echo fence=$TICKQ_FENCE",
    ])
    .ok();
    let fence = lock
        .stdout
        .trim()
        .strip_prefix("fence=")
        .unwrap_or_default();
    assert!(fence.parse::<u64>().is_ok_and(|f| f > 0), "{}", lock.stdout);

    let stats = tickq(&["stats", "--json"]).json();
    assert_eq!(stats["queues"][0]["queue"], "default", "{stats}");
    assert!(
        stats["queues"][0]["processed"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    server.log()
}

#[test]
fn quick_tour_over_tls_with_a_private_ca_from_the_environment() {
    let redis = TestRedis::builder().tls().start();
    let ca = redis.certs().unwrap().ca().display().to_string();
    quick_tour(&redis.url(), &[("TICKQ_REDIS_CA", &ca)], "");
}

#[test]
fn quick_tour_with_client_certificates_from_the_config_file() {
    let redis = TestRedis::builder().tls_client_certs().start();
    let certs = redis.certs().unwrap();
    let tls = format!(
        "[redis_tls]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        certs.ca(),
        certs.client_cert(),
        certs.client_key()
    );
    // The verbs get the same files from the environment.
    let ca = certs.ca().display().to_string();
    let cert = certs.client_cert().display().to_string();
    let key = certs.client_key().display().to_string();
    let env = [
        ("TICKQ_REDIS_CA", ca.as_str()),
        ("TICKQ_REDIS_CERT", cert.as_str()),
        ("TICKQ_REDIS_KEY", key.as_str()),
    ];
    quick_tour(&redis.url(), &env, &tls);
}

#[test]
fn an_untrusted_certificate_names_the_ca_setting_not_a_missing_redis() {
    let redis = TestRedis::builder().tls().start();
    let url = redis.url();
    let other = redis.certs().unwrap().other_ca().display().to_string();
    for env in [vec![], vec![("TICKQ_REDIS_CA", other.as_str())]] {
        let run = run_env(Some(&url), &["stats"], &env).fails(1, "not trusted");
        assert!(
            run.stderr
                .contains("set TICKQ_REDIS_CA / [redis_tls] ca_file to the CA that signed"),
            "{run:?}"
        );
        assert!(!run.stderr.contains("no Redis"), "{run:?}");
    }
}

#[test]
fn a_server_that_wants_a_client_certificate_says_which_settings() {
    let redis = TestRedis::builder().tls_client_certs().start();
    let ca = redis.certs().unwrap().ca().display().to_string();
    let run = run_env(Some(&redis.url()), &["stats"], &[("TICKQ_REDIS_CA", &ca)])
        .fails(1, "refused the TLS handshake");
    assert!(
        run.stderr
            .contains("TICKQ_REDIS_CERT / [redis_tls] cert_file"),
        "{run:?}"
    );
}

#[test]
fn unusable_tls_files_are_usage_errors_naming_the_setting() {
    let redis = TestRedis::builder().tls().start();
    let certs = redis.certs().unwrap();
    let missing = certs.dir().join("nope.pem").display().to_string();
    let cert = certs.client_cert().display().to_string();
    let ca = certs.ca().display().to_string();
    run_env(
        Some(&redis.url()),
        &["stats"],
        &[("TICKQ_REDIS_CA", &missing)],
    )
    .fails(2, "TICKQ_REDIS_CA / [redis_tls] ca_file");
    run_env(
        Some(&redis.url()),
        &["stats"],
        &[("TICKQ_REDIS_CERT", &cert)],
    )
    .fails(2, "TICKQ_REDIS_KEY / [redis_tls] key_file");
    run_env(
        Some(&redis.plain_url()),
        &["stats"],
        &[("TICKQ_REDIS_CA", &ca)],
    )
    .fails(2, "not a TLS URL");
}

/// `tickq doctor ARGS` against `url`, with `env`.
fn doctor(url: &str, args: &[&str], env: &[(&str, &str)]) -> crate::util::Run {
    run_env(Some(url), &[&["doctor"], args].concat(), env)
}

#[test]
fn doctor_passes_a_sound_deployment_and_prints_every_check() {
    let redis = TestRedis::start();
    let run = doctor(&redis.url(), &[], &[]).ok();
    for check in [
        "redis_version",
        "persistence",
        "eviction",
        "memory",
        "clock",
        "acl",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "{check}: {run:?}"
        );
    }
    let json = doctor(&redis.url(), &["--json"], &[]).json();
    assert_eq!(json["sound"], true, "{json}");
    assert_eq!(json["findings"][0]["check"], "redis_version");
}

#[test]
fn doctor_fails_an_evicting_policy_and_warns_about_persistence_off() {
    let redis = TestRedis::builder()
        .appendonly(false)
        .extra_args(["--maxmemory-policy", "volatile-lru"])
        .start();
    let run = doctor(&redis.url(), &[], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("maxmemory-policy volatile-lru")
            && run.stderr.contains("set maxmemory-policy noeviction"),
        "{run:?}"
    );
    // A warning names what a restart loses, and does not fail by itself.
    assert!(run.stdout.contains("warning  persistence"), "{run:?}");
    assert!(run.stdout.contains("restart loses every job"), "{run:?}");
    assert!(!run.stderr.contains("persistence"), "{run:?}");
    let json = doctor(&redis.url(), &["--json"], &[]);
    assert_eq!(json.code, 1);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["sound"], false);
}

#[test]
fn doctor_fails_a_clock_more_than_a_second_off() {
    let redis = TestRedis::start();
    let libfaketime = find_libfaketime();
    let env = [("LD_PRELOAD", libfaketime.as_str()), ("FAKETIME", "-3s")];
    let run = doctor(&redis.url(), &[], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("this node's clock is +"), "{run:?}");
    assert!(run.stderr.contains("NTP"), "{run:?}");
}

#[test]
fn doctor_checks_the_exec_allow_list_of_the_config() {
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tickq.toml");
    std::fs::write(
        &config,
        "[exec]\nallow = [\"sh\", \"no-such-program-here\"]\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let run = doctor(&redis.url(), &["--config", &config], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("ok       exec_allow"), "{run:?}");
    assert!(run.stderr.contains("\"no-such-program-here\""), "{run:?}");
}

#[test]
fn the_server_logs_the_same_checks_once_at_startup() {
    let redis = TestRedis::builder()
        .extra_args(["--maxmemory-policy", "allkeys-lru"])
        .start();
    let server = Server::start(None, &["--redis", &redis.url()], &[]);
    server.wait_log("deployment check", LIMIT);
    let log = server.log();
    assert!(log.contains("maxmemory-policy allkeys-lru"), "{log}");
    assert_eq!(
        log.matches("maxmemory-policy allkeys-lru").count(),
        1,
        "{log}"
    );
}

fn find_libfaketime() -> String {
    let candidates = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"));
    for path in candidates {
        if path.exists() {
            return path.to_string_lossy().into_owned();
        }
    }
    panic!("this test needs libfaketime: apt-get install faketime (./dev test installs it)");
}

const PASSWORD: &str = "s3cr3t-Pa55word-4-tickq";

/// The least-privilege ACL exactly as docs/operations.md gives it, for user `tickq`.
fn documented_acl(redis: &TestRedis, password: &str) {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("ACL SETUSER tickq "))
        .expect("docs/operations.md has the ACL line");
    let mut cmd = redis::cmd("ACL");
    for word in line.split_whitespace().skip(1) {
        if word == ">CHANGE-ME" {
            cmd.arg(format!(">{password}"));
        } else {
            cmd.arg(word);
        }
    }
    cmd.exec(&mut redis.sync_conn()).unwrap();
}

#[test]
fn quick_tour_as_the_documented_least_privilege_user() {
    let redis = TestRedis::builder().tcp().start();
    documented_acl(&redis, PASSWORD);
    let port = redis.port().unwrap();
    let url = format!("redis://tickq:{PASSWORD}@127.0.0.1:{port}");
    let log = quick_tour(&url, &[], "");
    assert!(
        !log.contains(PASSWORD),
        "the password is in the log:\n{log}"
    );
    assert!(log.contains("deployment checks passed"), "{log}");

    // The doctor finds the user sound, by trying each command (it may not ask ACL DRYRUN).
    let run = doctor(&url, &[], &[]).ok();
    assert!(run.stdout.contains("trying each"), "{run:?}");
    assert!(!run.stdout.contains(PASSWORD), "{run:?}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tickq:{#doctor}:*")
        .query(&mut redis.sync_conn())
        .unwrap();
    assert!(keys.is_empty(), "probe keys left behind: {keys:?}");

    // One command less, and the doctor names it and what to grant.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("tickq")
        .arg("-xadd")
        .exec(&mut redis.sync_conn())
        .unwrap();
    let run = doctor(&url, &[], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("may not run xadd"), "{run:?}");
    assert!(run.stderr.contains("ACL SETUSER <user> +xadd"), "{run:?}");
    assert!(!run.stderr.contains(PASSWORD), "{run:?}");
}

#[test]
fn passwords_stay_out_of_errors_and_config_show() {
    let redis = TestRedis::builder().tcp().start();
    documented_acl(&redis, PASSWORD);
    let port = redis.port().unwrap();
    let wrong = "wr0ng-Pa55word-4-tickq";
    let bad = format!("redis://tickq:{wrong}@127.0.0.1:{port}");
    let run = run_env(Some(&bad), &["stats"], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stderr.contains(wrong), "{run:?}");
    assert!(run.stderr.contains("tickq:***@127.0.0.1"), "{run:?}");

    let url = format!("redis://tickq:{PASSWORD}@127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tickq.toml");
    std::fs::write(&config, format!("redis = \"{url}\"\n")).unwrap();
    let config = config.display().to_string();
    for args in [&["config", "show"][..], &["config", "show", "--json"]] {
        let run = run_env(
            None,
            &[&["--config", config.as_str()][..], args].concat(),
            &[],
        )
        .ok();
        assert!(!run.stdout.contains(PASSWORD), "{run:?}");
        assert!(run.stdout.contains("tickq:***@127.0.0.1"), "{run:?}");
    }
    // An invalid URL with a password is refused without echoing it.
    let run = run_env(Some(&format!("redis://tickq:{PASSWORD}@")), &["stats"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains(PASSWORD), "{run:?}");
}
