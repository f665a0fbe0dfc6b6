//! The `http` job kind end to end: a `tickq server` process calling a small HTTP server that
//! this test runs on loopback and that records what it was sent.

use crate::util::{Server, run, wait_for, wait_state};
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(15);

/// One request as the endpoint saw it; header names lowercased.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// An HTTP/1.1 server on 127.0.0.1, one thread per connection, one request per connection.
/// Paths: `/ok` answers 200 "hello from the endpoint"; `/fail` answers 500 "database on
/// fire"; `/slow` answers after 5 s; `/hang` never answers and notes in `closed` when the
/// client closes the connection; anything else 404.
struct Endpoint {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    closed: Arc<Mutex<Vec<String>>>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(Vec::new()));
        let (record, record_closed) = (seen.clone(), closed.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (record, record_closed) = (record.clone(), record_closed.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &record, &record_closed);
                });
            }
        });
        Endpoint { base, seen, closed }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    conn: TcpStream,
    record: &Mutex<Vec<Seen>>,
    closed: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let id = headers.get("x-tickq-job-id").cloned().unwrap_or_default();
    record.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        headers,
        body: String::from_utf8(body).unwrap(),
    });
    if path == "/hang" {
        // Wait for the client to hang up (read gives 0 bytes), 10 s at most.
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        if matches!(reader.read(&mut [0; 1]), Ok(0)) {
            closed.lock().unwrap().push(id);
        }
        return Ok(());
    }
    let (status, text) = match path.as_str() {
        "/ok" => ("200 OK", "hello from the endpoint\n"),
        "/fail" => ("500 Internal Server Error", "database on fire"),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            ("200 OK", "too late")
        }
        _ => ("404 Not Found", "no such path"),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    conn.flush()
}

fn start() -> (TestRedis, Server, Endpoint) {
    let redis = TestRedis::start();
    let server = Server::start(
        // A short lease: a cancel reaches the worker at its next renewal.
        Some("[worker]\nqueues = { default = 1 }\nlease = \"2s\"\n"),
        &["--redis", &redis.url()],
        // A proxy set in the developer's environment must not get in between.
        &[("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1")],
    );
    (redis, server, Endpoint::start())
}

fn enqueue(url: &str, payload: serde_json::Value, opts: &[&str]) -> String {
    let payload = payload.to_string();
    let args = [
        &["enqueue", "default", "http", "--payload", &payload][..],
        opts,
    ]
    .concat();
    run(Some(url), &args).ok().stdout.trim().to_owned()
}

#[test]
fn a_2xx_answer_completes_the_job_with_the_body() {
    let (redis, _server, endpoint) = start();
    let url = redis.url();

    let id = enqueue(
        &url,
        serde_json::json!({
            "url": endpoint.url("/ok"),
            "headers": {"X-Custom": "yes", "Authorization": "Bearer t0k"},
            "body": {"n": 1, "s": "two"},
        }),
        &[],
    );
    let job = wait_state(&url, &id, "completed", LIMIT);
    assert_eq!(job["result"], "hello from the endpoint");

    // Default GET without a body, a string body sent as is with the method given.
    let get = enqueue(&url, serde_json::json!({"url": endpoint.url("/ok")}), &[]);
    let put = enqueue(
        &url,
        serde_json::json!({"url": endpoint.url("/ok"), "method": "put", "body": "a,b\n",
                           "headers": {"content-type": "text/csv"}}),
        &[],
    );
    wait_state(&url, &get, "completed", LIMIT);
    wait_state(&url, &put, "completed", LIMIT);

    let seen = endpoint.seen();
    let by_id = |id: &str| {
        seen.iter()
            .find(|s| s.headers.get("x-tickq-job-id").map(String::as_str) == Some(id))
            .unwrap_or_else(|| panic!("no request for job {id}: {seen:?}"))
            .clone()
    };
    let post = by_id(&id);
    assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/ok"));
    assert_eq!(post.headers["x-tickq-attempt"], "1");
    assert_eq!(post.headers["x-custom"], "yes");
    assert_eq!(post.headers["authorization"], "Bearer t0k");
    assert_eq!(post.headers["content-type"], "application/json");
    assert!(post.headers["user-agent"].starts_with("tickq/"), "{post:?}");
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body, serde_json::json!({"n": 1, "s": "two"}));

    let get = by_id(&get);
    assert_eq!(get.method, "GET");
    assert_eq!(get.body, "");
    assert!(!get.headers.contains_key("content-type"), "{get:?}");

    let put = by_id(&put);
    assert_eq!(put.method, "PUT");
    assert_eq!(put.body, "a,b\n");
    assert_eq!(put.headers["content-type"], "text/csv");
}

#[test]
fn errors_and_timeouts_are_retried_by_policy() {
    let (redis, _server, endpoint) = start();
    let url = redis.url();

    let failing = enqueue(
        &url,
        serde_json::json!({"url": endpoint.url("/fail")}),
        &["--max-attempts", "2"],
    );
    let slow = enqueue(
        &url,
        serde_json::json!({"url": endpoint.url("/slow"), "timeout": "200ms"}),
        &["--max-attempts", "1"],
    );
    // Nothing listens on a port whose listener was just dropped.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let refused = enqueue(
        &url,
        serde_json::json!({"url": closed}),
        &["--max-attempts", "1"],
    );

    let job = wait_state(&url, &failing, "dead", LIMIT);
    assert_eq!(job["attempt"], 2, "retried once: {job}");
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(error.contains("database on fire"), "{error}");
    let attempts: Vec<String> = endpoint
        .seen()
        .iter()
        .filter(|s| s.path == "/fail")
        .map(|s| s.headers["x-tickq-attempt"].clone())
        .collect();
    assert_eq!(attempts, ["1", "2"]);

    let job = wait_state(&url, &slow, "dead", LIMIT);
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("timeout of 200ms"), "{error}");

    let job = wait_state(&url, &refused, "dead", LIMIT);
    let error = job["last_error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("connect"), "{error}");
}

#[test]
fn a_bad_payload_kills_the_job_without_a_request() {
    let (redis, _server, endpoint) = start();
    let url = redis.url();
    let cases = [
        (
            serde_json::json!({"url": endpoint.url("/ok"), "verb": "GET"}),
            "unknown field `verb`",
        ),
        (
            serde_json::json!({"url": "ftp://127.0.0.1/file"}),
            "scheme \"ftp\" is not supported",
        ),
        (
            serde_json::json!({"url": endpoint.url("/ok"), "method": "BREW"}),
            "method \"BREW\" is not supported",
        ),
        (
            serde_json::json!({"url": endpoint.url("/ok"), "headers": {"bad name": "x"}}),
            "not a header name",
        ),
        (
            serde_json::json!({"url": endpoint.url("/ok"), "timeout": "soon"}),
            "invalid duration",
        ),
    ];
    let ids: Vec<String> = cases
        .iter()
        .map(|(payload, _)| enqueue(&url, payload.clone(), &["--max-attempts", "3"]))
        .collect();
    for ((payload, needle), id) in cases.iter().zip(&ids) {
        let job = wait_state(&url, id, "dead", LIMIT);
        assert_eq!(job["attempt"], 1, "killed, not retried: {job}");
        let error = job["last_error"].as_str().unwrap();
        assert!(error.contains(needle), "{payload}: {error}");
    }
    // A good job after them: when it arrived, the bad ones had long been decided.
    let good = enqueue(&url, serde_json::json!({"url": endpoint.url("/ok")}), &[]);
    wait_state(&url, &good, "completed", LIMIT);
    wait_for(LIMIT, "the good request", || {
        (!endpoint.seen().is_empty()).then_some(())
    });
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 1, "only the good job made a request: {seen:?}");
}

#[test]
fn a_stopped_job_drops_its_request() {
    let (redis, _server, endpoint) = start();
    let url = redis.url();
    let id = enqueue(
        &url,
        serde_json::json!({"url": endpoint.url("/hang"), "timeout": "30s"}),
        &[],
    );
    wait_for(LIMIT, "the request", || {
        (!endpoint.seen().is_empty()).then_some(())
    });
    run(Some(&url), &["cancel", &id]).ok();
    // The worker sees the cancel at its next lease renewal (well under 1 s with a 2 s lease);
    // the handler then drops the request at once, not when the worker gives up on it after
    // its stop grace (4 s here).
    wait_for(
        Duration::from_millis(2500),
        "the connection to close",
        || endpoint.closed.lock().unwrap().contains(&id).then_some(()),
    );
    wait_state(&url, &id, "cancelled", LIMIT);
}
