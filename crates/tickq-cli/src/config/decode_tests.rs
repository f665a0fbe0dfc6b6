//! Property tests of the CLI's decoders of outside data: config files, `--payload` text, exec
//! payloads and their signatures, Redis URLs. Arbitrary input never panics, and a refusal is a
//! usage error (exit 2) or a reason that names the bad part.
//!
//! 256 cases each by default (CI); `PROPTEST_CASES=100000` for a long run (docs/operations.md).
//! Each property prints how many cases it tried.

use super::file::FileConfig;
use super::sources::Sources;
use super::{UsageError, validate};
use crate::cli::Cli;
use crate::kinds::exec::{Binding, ExecPayload, Secret};
use clap::Parser as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;

fn check<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let tried = Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        tried.set(tried.get() + 1);
        property(value)
    });
    println!("{name}: {} cases", tried.get());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Strings a config value might hold: near-valid ones of every setting, and anything.
fn setting_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "",
            "default",
            "30s",
            "0s",
            "1d",
            "-1",
            "5x",
            "50/1s",
            "0/1s",
            "50/0s",
            "@every 1s",
            "@every 0s",
            "0 2 * * *",
            "61 * * * *",
            "UTC",
            "Asia/Shanghai",
            "Mars/Olympus",
            "127.0.0.1:7700",
            "0.0.0.0:80",
            "[::1]:99999",
            "forbid",
            "allow",
            "replace",
            "skip",
            "latest",
            "all",
            "sometimes",
            "exec",
            "http",
            "sh",
            "/bin/sh",
            "redis://h:1",
            "rediss://h:1",
            "redis-cluster://",
            "a:b",
            "short",
            "a long enough secret value",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        4 => setting_text().prop_map(toml::Value::String),
        2 => any::<i64>().prop_map(toml::Value::Integer),
        1 => prop_oneof![Just(0i64), Just(1), Just(16), Just(u32::MAX as i64 + 1)]
            .prop_map(toml::Value::Integer),
        1 => any::<bool>().prop_map(toml::Value::Boolean),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(toml::Value::Float),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            proptest::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// The config file's keys (at every level), and some it does not have.
fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "redis",
        "node",
        "worker",
        "queues",
        "concurrency",
        "lease",
        "http",
        "listen",
        "token",
        "exec",
        "allow",
        "secret",
        "limits",
        "rate",
        "cron",
        "name",
        "schedule",
        "timezone",
        "queue",
        "overlap",
        "catchup",
        "tasks",
        "kind",
        "cmd",
        "env",
        "cwd",
        "stdin",
        "payload",
        "redis_tls",
        "ca_file",
        "cert_file",
        "key_file",
        "default",
        "unknown",
    ])
    .prop_map(str::to_owned)
}

const VALID: &str = r#"
redis = "redis://127.0.0.1:6379"
node = "web-1"
[worker]
queues = { default = 1, mail = 2 }
concurrency = 16
lease = "30s"
[limits.default]
concurrency = 4
rate = "50/1s"
[http]
listen = "127.0.0.1:7700"
[exec]
allow = ["sh"]
secret = "a long enough secret value"
[redis_tls]
ca_file = "ca.pem"
[[cron]]
name = "nightly"
schedule = "0 2 * * *"
timezone = "Asia/Shanghai"
queue = "default"
overlap = "forbid"
catchup = "latest"
tasks = [{ kind = "exec", cmd = ["sh", "-c", "true"] }]
"#;

/// The example config with one setting replaced by a value of any type: every check of the
/// settings is reached with near-valid input.
fn near_valid_config() -> impl Strategy<Value = String> {
    let paths: Vec<&[&str]> = vec![
        &["redis"],
        &["node"],
        &["worker", "queues", "default"],
        &["worker", "queues"],
        &["worker", "concurrency"],
        &["worker", "lease"],
        &["limits", "default", "concurrency"],
        &["limits", "default", "rate"],
        &["limits", "x y"],
        &["http", "listen"],
        &["http", "token"],
        &["exec", "allow"],
        &["exec", "secret"],
        &["redis_tls", "cert_file"],
        &["cron", "0", "name"],
        &["cron", "0", "schedule"],
        &["cron", "0", "timezone"],
        &["cron", "0", "queue"],
        &["cron", "0", "overlap"],
        &["cron", "0", "catchup"],
        &["cron", "0", "tasks"],
        &["cron", "0", "tasks", "0", "cmd"],
        &["cron", "0", "tasks", "0", "kind"],
        &["cron", "0", "tasks", "0", "env"],
    ];
    (proptest::sample::select(paths), toml_value()).prop_map(|(path, value)| {
        let mut doc: toml::Value = toml::from_str(VALID).expect("the example parses");
        let mut at = &mut doc;
        for (i, part) in path.iter().enumerate() {
            let last = i == path.len() - 1;
            at = match at {
                toml::Value::Table(t) if last => {
                    t.insert((*part).to_owned(), value.clone());
                    break;
                }
                toml::Value::Table(t) => t
                    .entry(*part)
                    .or_insert(toml::Value::Table(Default::default())),
                toml::Value::Array(a) => {
                    let i: usize = part.parse().expect("an index");
                    if last {
                        a[i] = value.clone();
                        break;
                    }
                    &mut a[i]
                }
                _ => break,
            };
        }
        toml::to_string(&doc).unwrap_or_default()
    })
}

/// A config file: the example with one setting changed, TOML built from the file's own keys
/// with values of any type (so that it parses as TOML and reaches the checks), or arbitrary
/// text.
fn config_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => near_valid_config(),
        3 => proptest::collection::btree_map(key(), toml_value(), 0..6).prop_map(|m| {
            toml::to_string(&toml::Value::Table(m.into_iter().collect())).unwrap_or_default()
        }),
        1 => any::<String>(),
    ]
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from([&["tickq", "--config", "/etc/tickq.toml"], args].concat())
        .expect("the test's command line parses")
}

#[test]
fn config_files_load_or_say_what_is_wrong() {
    check("config file", config_text(), |text| {
        let file: FileConfig = match toml::from_str(&text) {
            Ok(file) => file,
            Err(e) => {
                // What `load_file` reports, with the file's path in front: where and what.
                prop_assert!(!e.to_string().is_empty());
                return Ok(());
            }
        };
        for args in [&["config", "show"][..], &["server"], &["stats"]] {
            let sources = Sources {
                file: Some(toml::from_str(&text).expect("parsed above")),
                ..Sources::default()
            };
            if let Err(e) = validate(cli(args), sources) {
                prop_assert!(e.is::<UsageError>(), "{:?}: {}", args, e);
                prop_assert!(!e.to_string().is_empty());
            }
        }
        drop(file);
        Ok(())
    });
}

#[test]
fn payload_text_parses_or_names_its_source() {
    let text = prop_oneof![any::<String>(), "[{}\\[\\]\":,0-9a-z ]{0,24}"];
    check("--payload text", text, |text| {
        if text.starts_with('@') {
            return Ok(());
        }
        if let Err(e) = super::verbs::payload(&text, None) {
            prop_assert!(e.is::<UsageError>());
            prop_assert!(e.to_string().contains("--payload"), "{}", e);
        }
        Ok(())
    });
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        setting_text().prop_map(serde_json::Value::from),
        "[0-9a-f]{0,66}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                proptest::sample::select(vec!["cmd", "env", "cwd", "stdin", "sig", "PATH", "x"]),
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

#[test]
fn exec_payloads_and_signatures_decode_or_say_why() {
    let secret = Secret::new("0123456789abcdef").unwrap();
    let job = (
        "[a-z:]{0,12}",
        "[a-z]{1,8}",
        proptest::option::of("[a-z]{1,6}"),
    );
    check(
        "exec payload",
        (json(), job),
        |(value, (id, queue, cron))| {
            let payload: ExecPayload = match serde_json::from_value(value) {
                Ok(p) => p,
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    return Ok(());
                }
            };
            if let Err(e) = payload.validate() {
                prop_assert!(
                    ["cmd", "env", "cwd", "stdin"].iter().any(|f| e.contains(f)),
                    "{}",
                    e
                );
                return Ok(());
            }
            let binding = match &cron {
                Some(name) => Binding::schedule(&queue, name),
                None => Binding::job(&queue, &id),
            };
            match payload.verify(&secret, &binding) {
                Ok(()) => prop_assert!(false, "an arbitrary sig verified: {:?}", payload.sig),
                Err(e) => prop_assert!(e.contains("sig") || e.contains("signature"), "{}", e),
            }
            // Signed, it verifies for its binding only.
            let mut signed = payload.clone();
            signed.sign(&secret, &binding);
            prop_assert!(signed.verify(&secret, &binding).is_ok());
            prop_assert!(
                signed
                    .verify(&secret, &Binding::job(&queue, "another"))
                    .is_err()
                    || id == "another"
            );
            Ok(())
        },
    );
}

#[test]
fn redis_urls_on_the_command_line_are_checked_before_connecting() {
    let url = prop_oneof![
        any::<String>(),
        "(redis|rediss|unix|valkey|http|redis-cluster|redis-sentinel)://[a-z0-9:@/,.%\\[\\]]{0,24}",
    ];
    check("cli redis url", url, |url| {
        if let Err(e) = super::redis::check_redis_url(&url) {
            prop_assert!(e.contains("URL"), "{}", e);
        }
        Ok(())
    });
}

/// The base of the near-valid configs is itself valid, so a change to it is what the checks
/// see.
#[test]
fn the_near_valid_base_config_is_valid() {
    for args in [&["config", "show"][..], &["server"]] {
        let sources = Sources {
            file: Some(toml::from_str(VALID).unwrap()),
            ..Sources::default()
        };
        validate(cli(args), sources).unwrap();
    }
}
