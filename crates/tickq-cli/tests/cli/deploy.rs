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
    assert_eq!(lock.stdout.trim(), "fence=1");

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
