//! The config's checks, without Redis or a file on disk.

use super::file::FileConfig;
use super::redis::{REDIS_URL_ENV, Redis, RedisOrigin, resolve_redis};
use super::server::{parse_queues, server_config};
use crate::cli::ServerOpts;
use std::path::Path;
use std::time::Duration;

fn file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn redis_precedence() {
    let path = Path::new("/etc/tickq.toml");
    let r = |flag, env, file| resolve_redis(flag, env, file, None).unwrap();
    let f = Some(("redis://file:1", path));
    assert_eq!(
        r(Some("redis://flag:1"), Some("redis://env:1"), f).origin,
        RedisOrigin::Flag
    );
    assert_eq!(r(None, Some("redis://env:1"), f).url, "redis://env:1");
    assert_eq!(r(None, Some(""), f).url, "redis://file:1");
    assert!(matches!(
        r(None, None, None).origin,
        RedisOrigin::Default { .. }
    ));
    let err = resolve_redis(Some("http://x"), None, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported scheme"), "{err}");
    let err = resolve_redis(None, Some("nonsense"), None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(REDIS_URL_ENV), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let err = file("[worker]\nconcurency = 3\n").unwrap_err();
    assert!(err.contains("concurency"), "{err}");
    let err = file("[[cron]]\nname='a'\nschedule='@daily'\ntasks=[]\nretries=1\n").unwrap_err();
    assert!(err.contains("retries"), "{err}");
}

#[test]
fn queues_flag() {
    assert_eq!(
        parse_queues("default=1, critical=3").unwrap().0,
        vec![("critical".into(), 3), ("default".into(), 1)]
    );
    assert_eq!(parse_queues("solo").unwrap().0, vec![("solo".into(), 1)]);
    let (queues, shards) = parse_queues("hot=2:4,default").unwrap();
    assert_eq!(queues, vec![("default".into(), 1), ("hot".into(), 2)]);
    assert_eq!(shards, [("hot".to_owned(), 4)].into());
    assert!(parse_queues("hot=1:0").unwrap_err().contains("between 1"));
    assert!(parse_queues("hot=1:x").unwrap_err().contains("shard count"));
    assert!(parse_queues("a=0").unwrap_err().contains("at least 1"));
    assert!(parse_queues("a=x").unwrap_err().contains("whole number"));
    assert!(parse_queues("a,a").unwrap_err().contains("twice"));
    assert!(parse_queues("a{b}").unwrap_err().contains("queue name"));
}

fn opts() -> ServerOpts {
    ServerOpts {
        node: None,
        queues: None,
        concurrency: None,
        listen: None,
        data: None,
    }
}

fn redis() -> Redis {
    Redis {
        url: "redis://127.0.0.1:6379".into(),
        origin: RedisOrigin::Flag,
        high_water: None,
        tls: tickq::TlsFiles::new(),
    }
}

#[test]
fn listen_needs_a_token_off_loopback() {
    let mut o = opts();
    o.listen = Some("0.0.0.0:7700".into());
    let err = server_config(redis(), None, FileConfig::default(), o, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("token"), "{err}");
    let mut o = opts();
    o.listen = Some("0.0.0.0:7700".into());
    let f = file("[http]\ntoken = \"s3cret\"\n").unwrap();
    assert!(server_config(redis(), None, f, o, None).is_ok());
    let mut o = opts();
    o.listen = Some("[::1]:7700".into());
    assert!(server_config(redis(), None, FileConfig::default(), o, None).is_ok());
}

#[test]
fn worker_lease() {
    let lease = |text: &str| {
        let f = file(&format!("[worker]\nlease = {text:?}\n")).unwrap();
        server_config(redis(), None, f, opts(), None).map(|c| c.lease)
    };
    assert_eq!(lease("2s").unwrap(), Some(Duration::from_secs(2)));
    assert_eq!(lease("1m30s").unwrap(), Some(Duration::from_secs(90)));
    let err = lease("100ms").unwrap_err().to_string();
    assert!(
        err.contains("[worker] lease") && err.contains("300ms"),
        "{err}"
    );
    let err = lease("2 s").unwrap_err().to_string();
    assert!(err.contains("[worker] lease"), "{err}");
    let c = server_config(redis(), None, FileConfig::default(), opts(), None).unwrap();
    assert_eq!(c.lease, None);
}

#[test]
fn limits_tables_are_checked() {
    let ok = "[limits.emails]\nconcurrency = 3\nrate = \"50/1s\"\n[limits.pdf]\nrate = \"10/m\"\n";
    let c = server_config(redis(), None, file(ok).unwrap(), opts(), None).unwrap();
    let rate = |n, s| Some(tickq::Rate::new(n, Duration::from_secs(s)));
    assert_eq!(
        c.limits,
        [
            (
                "emails".to_owned(),
                tickq::QueueLimits {
                    concurrency: Some(3),
                    rate: rate(50, 1),
                }
            ),
            (
                "pdf".to_owned(),
                tickq::QueueLimits {
                    concurrency: None,
                    rate: rate(10, 60),
                }
            ),
        ]
    );
    for (text, needle) in [
        ("[limits.q]\nconcurrency = 0\n", "at least 1"),
        ("[limits.q]\nrate = \"fast\"\n", "invalid rate"),
        ("[limits.q]\n", "set concurrency"),
        ("[limits.\"a b\"]\nconcurrency = 1\n", "invalid queue name"),
    ] {
        let err = server_config(redis(), None, file(text).unwrap(), opts(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{text}: {err}");
        assert!(err.contains("[limits."), "{text}: {err}");
    }
    let err = file("[limits.q]\nburst = 3\n").unwrap_err();
    assert!(err.contains("burst"), "{err}");
}

#[test]
fn cron_tables_are_checked() {
    let ok = r#"
[[cron]]
name = "nightly"
schedule = "0 2 * * *"
timezone = "Asia/Shanghai"
overlap = "forbid"
catchup = "all"
tasks = [ { kind = "exec", cmd = ["report.sh", "--part", "1"] }, { kind = "mail", payload = { to = "ops" } } ]
"#;
    let c = server_config(redis(), None, file(ok).unwrap(), opts(), None).unwrap();
    assert_eq!(c.cron.len(), 1);
    assert_eq!(c.cron[0].queue, "default");
    let cron = |lines: &str| format!("[[cron]]\nname = \"x\"\n{lines}\n");
    for (text, needle) in [
        (
            cron("schedule = \"* *\"\ntasks = [ { kind = \"mail\" } ]"),
            "schedule",
        ),
        (
            cron(
                "schedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\ntasks = [ { kind = \"mail\" } ]",
            ),
            "unknown time zone",
        ),
        (
            cron("schedule = \"@daily\"\noverlap = \"sometimes\"\ntasks = [ { kind = \"mail\" } ]"),
            "sometimes",
        ),
        (
            cron("schedule = \"@daily\"\ntasks = []"),
            "at least one task",
        ),
        (
            cron("schedule = \"@daily\"\ntasks = [ { kind = \"exec\" } ]"),
            "cmd",
        ),
        (
            cron("schedule = \"@daily\"\ntasks = [ { kind = \"mail\", cmd = [\"x\"] } ]"),
            "payload",
        ),
        (
            format!(
                "{0}{0}",
                cron("schedule = \"@daily\"\ntasks = [ { kind = \"mail\" } ]")
            ),
            "twice",
        ),
    ] {
        let err = match file(&text) {
            Err(e) => e,
            Ok(f) => server_config(redis(), None, f, opts(), None)
                .unwrap_err()
                .to_string(),
        };
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn a_cron_table_with_steps_fires_one_signed_workflow_per_tick() {
    let text = r#"
[[cron]]
name = "nightly"
schedule = "@daily"
queue = "nightly"
[[cron.step]]
id = "part1"
cmd = ["sh", "-c", "echo 1"]
[[cron.step]]
id = "report"
kind = "report"
after = ["part1"]
"#;
    let secret = crate::kinds::exec::Secret::new("0123456789abcdef0123456789abcdef").unwrap();
    let c = server_config(redis(), None, file(text).unwrap(), opts(), None).unwrap();
    // The server signs what it stores (server.rs), exec steps of a workflow included.
    let mut signed = c.cron[0].clone();
    signed.sign_exec(&secret);
    let spec = signed.to_schedule();
    let json = serde_json::to_value(&signed).unwrap();
    let task = &json["tasks"][0];
    assert_eq!(task["kind"], "flow", "{json}");
    assert_eq!(task["queue"], "nightly");
    assert_eq!(task["steps"][0]["kind"], "exec");
    assert!(
        task["steps"][0]["payload"]["sig"].is_string(),
        "exec steps are signed like exec tasks: {json}"
    );
    assert_eq!(task["steps"][1]["after"], serde_json::json!(["part1"]));
    assert!(spec.validate().is_ok());
    // [[cron.batch]] tables travel with the steps to the node that submits.
    let with_batch = format!(
        "{text}[[cron.step]]\nid = \"alert\"\nkind = \"alert\"\n\
         [[cron.batch]]\nsteps = [\"part1\"]\non_failure = \"alert\"\n"
    );
    let c = server_config(redis(), None, file(&with_batch).unwrap(), opts(), None).unwrap();
    let json = serde_json::to_value(&c.cron[0]).unwrap();
    assert_eq!(
        json["tasks"][0]["batches"],
        serde_json::json!([{"steps": ["part1"], "on_failure": "alert"}])
    );

    let cron = |lines: &str| format!("[[cron]]\nname = \"x\"\nschedule = \"@daily\"\n{lines}\n");
    for (text, needle) in [
        (
            cron("tasks = [ { kind = \"mail\" } ]\n[[cron.step]]\nid = \"a\"\nkind = \"k\""),
            "not both",
        ),
        (
            cron("[[cron.step]]\nid = \"a\"\nkind = \"k\"\nafter = [\"b\"]"),
            "not a step",
        ),
        (
            cron("tasks = [ { kind = \"mail\" } ]\n[[cron.batch]]\nsteps = [\"a\"]"),
            "[[cron.batch]] needs the workflow's [[cron.step]]",
        ),
        (
            cron(
                "[[cron.step]]\nid = \"a\"\nkind = \"k\"\n[[cron.batch]]\nsteps = [\"a\"]\n\
                 on_failure = \"zz\"",
            ),
            "on_failure names \"zz\"",
        ),
    ] {
        let err = match file(&text) {
            Err(e) => e,
            Ok(f) => server_config(redis(), None, f, opts(), None)
                .unwrap_err()
                .to_string(),
        };
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn tls_files_come_from_the_environment_over_the_file_relative_to_it() {
    use super::redis::resolve_tls;
    use std::path::PathBuf;
    let config = file(
        "[redis_tls]\nca_file = \"ca.pem\"\ncert_file = \"/abs/client.pem\"\nkey_file = \"k.pem\"\n",
    )
    .unwrap();
    let path = Path::new("/etc/tickq/tickq.toml");
    let env = [Some("/env/ca.pem".into()), Some("".into()), None];
    let tls = resolve_tls(&env, Some((&config.redis_tls, path)));
    assert_eq!(tls.ca_file, Some(PathBuf::from("/env/ca.pem")));
    // An empty variable is unset: the file's value stands.
    assert_eq!(tls.cert_file, Some(PathBuf::from("/abs/client.pem")));
    assert_eq!(tls.key_file, Some(PathBuf::from("/etc/tickq/k.pem")));
    assert!(resolve_tls(&[None, None, None], None).is_empty());
    let err = file("[redis_tls]\nca = \"x\"\n").unwrap_err();
    assert!(err.contains("unknown field `ca`"), "{err}");
}

#[test]
fn library_tls_setting_names_become_the_clis() {
    assert_eq!(
        super::tls_setting_names(
            "not trusted (UnknownIssuer): set ca_file to the CA; the CA file (ca_file) x"
        ),
        "not trusted (UnknownIssuer): set TICKQ_REDIS_CA / [redis_tls] ca_file to the CA; the \
         CA file (TICKQ_REDIS_CA / [redis_tls] ca_file) x"
    );
    assert_eq!(
        super::tls_setting_names("set cert_file and key_file"),
        "set TICKQ_REDIS_CERT / [redis_tls] cert_file and TICKQ_REDIS_KEY / [redis_tls] key_file"
    );
}

#[test]
fn sharded_queues_in_the_file() {
    let text = "[worker]\nqueues = { default = 1, hot = { weight = 2, shards = 4 }, warm = {} }\n";
    let c = server_config(redis(), None, file(text).unwrap(), opts(), None).unwrap();
    assert_eq!(
        c.queues,
        [
            ("default".to_owned(), 1),
            ("hot".to_owned(), 2),
            ("warm".to_owned(), 1)
        ]
    );
    assert_eq!(c.shards, [("hot".to_owned(), 4)].into());
    let bad = |text: &str| {
        let f = file(text).map_err(|e| e.to_string())?;
        server_config(redis(), None, f, opts(), None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = bad("[worker]\nqueues = { hot = { shards = 0 } }\n").unwrap_err();
    assert!(
        err.contains("[worker] queues") && err.contains("between 1"),
        "{err}"
    );
    let err = bad("[worker]\nqueues = { hot = { shard = 2 } }\n").unwrap_err();
    assert!(err.contains("hot"), "{err}");
}
