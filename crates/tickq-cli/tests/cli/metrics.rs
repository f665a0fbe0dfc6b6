//! `GET /metrics` of a real node: job outcomes, durations and queue sizes as Prometheus text.

use crate::util::{Server, free_port, run, wait_for};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::time::Duration;
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(15);

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse the text exposition format: `name{k="v",...} value [timestamp]` lines; comments and
/// blank lines skipped.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value in {line:?}"),
        };
        let mut labels = BTreeMap::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let end = loop {
                // key
                let mut key = String::new();
                let mut closed = None;
                for (i, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' => {
                            closed = Some(i);
                            break;
                        }
                        ',' | ' ' => {}
                        c => key.push(c),
                    }
                }
                if let Some(i) = closed {
                    break i;
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "in {line:?}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("bad escape in {line:?}"),
                        },
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
            };
            &body[end + 1..]
        } else {
            rest
        };
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("{v:?} in {line:?}: {e}")),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, body.to_owned())
}

const CONFIG: &str = "[worker]\nqueues = { q = 1 }\n\n[exec]\nallow = [\"true\", \"false\"]\n";

#[test]
fn counts_outcomes_durations_and_queue_sizes() {
    const N: usize = 5;
    const M: usize = 3;
    let redis = TestRedis::start();
    let url = redis.url();
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = Server::start(Some(CONFIG), &["--redis", &url, "--listen", &addr], &[]);

    for _ in 0..N {
        run(Some(&url), &["exec", "q", "--", "true"]).ok();
    }
    for _ in 0..M {
        run(
            Some(&url),
            &["exec", "q", "--max-attempts", "1", "--", "false"],
        )
        .ok();
    }

    let jobs = |samples: &[Sample], outcome: &str| {
        value(
            samples,
            "tickq_jobs_total",
            &[("queue", "q"), ("outcome", outcome)],
        )
    };
    let samples = wait_for(LIMIT, "every job counted", || {
        let (status, body) = get(&addr, "/metrics", None);
        assert_eq!(status, 200, "{body}");
        let samples = parse(&body);
        let done = jobs(&samples, "completed") == Some(N as f64)
            && jobs(&samples, "dead") == Some(M as f64);
        done.then_some(samples)
    });

    // Nothing retried, nothing else happened.
    for outcome in ["failed", "cancelled", "abandoned", "handed_back"] {
        assert_eq!(jobs(&samples, outcome).unwrap_or(0.0), 0.0, "{outcome}");
    }
    let q = [("queue", "q")];
    assert_eq!(
        value(&samples, "tickq_job_duration_seconds_count", &q),
        Some((N + M) as f64)
    );
    // Buckets, not a summary: histogram_quantile needs them.
    assert_eq!(
        value(
            &samples,
            "tickq_job_duration_seconds_bucket",
            &[("queue", "q"), ("le", "+Inf")]
        ),
        Some((N + M) as f64)
    );
    assert_eq!(
        value(&samples, "tickq_queue_latency_seconds_count", &q),
        Some((N + M) as f64)
    );
    let size = |state| {
        value(
            &samples,
            "tickq_queue_size",
            &[("queue", "q"), ("state", state)],
        )
    };
    assert_eq!(size("completed"), Some(N as f64));
    assert_eq!(size("dead"), Some(M as f64));
    assert_eq!(size("pending"), Some(0.0));
    assert_eq!(value(&samples, "tickq_up", &[]), Some(1.0));
}

#[test]
fn a_configured_token_guards_metrics_but_not_healthz() {
    let redis = TestRedis::start();
    let url = redis.url();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = format!("{CONFIG}\n[http]\ntoken = \"s3cret\"\nread_token = \"peek\"\n");
    let _server = Server::start(Some(&config), &["--redis", &url, "--listen", &addr], &[]);

    assert_eq!(get(&addr, "/healthz", None), (200, "ok".to_owned()));
    assert_eq!(get(&addr, "/metrics", None).0, 401);
    assert_eq!(get(&addr, "/metrics", Some("wrong")).0, 401);
    let (status, body) = get(&addr, "/metrics", Some("s3cret"));
    assert_eq!(status, 200, "{body}");
    assert!(parse(&body).iter().any(|s| s.name == "tickq_up"), "{body}");
    assert_eq!(
        get(&addr, "/metrics", Some("peek")).0,
        200,
        "the read token reads metrics"
    );
}

#[test]
fn parses_the_text_format() {
    let text = "# HELP x y\n# TYPE x counter\nx{a=\"1\",b=\"q\\\"uo\\\\te\"} 3\nup 1 1700000000\n\
                h_bucket{le=\"+Inf\"} 2\n";
    let samples = parse(text);
    assert_eq!(
        value(&samples, "x", &[("a", "1"), ("b", "q\"uo\\te")]),
        Some(3.0)
    );
    assert_eq!(value(&samples, "up", &[]), Some(1.0));
    assert_eq!(value(&samples, "h_bucket", &[("le", "+Inf")]), Some(2.0));
}
