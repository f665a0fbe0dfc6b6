//! The built-in `http` job kind: make one HTTP request.
//!
//! Payload: `{"url": ..., "method": "POST", "headers": {...}, "body": ..., "timeout": "10s"}`.
//!
//! - `url` (required): an absolute `http://` or `https://` URL with a host;
//! - `method`: `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS` (any case).
//!   Default: `GET` without a body, `POST` with one;
//! - `headers`: `{"Name": "value"}`. `X-Tickq-*` are tickq's to set; `Host`,
//!   `Content-Length`, `Transfer-Encoding` and `Connection` are the client's. A job's
//!   `User-Agent` or `Content-Type` replaces tickq's;
//! - `body`: a string is sent as is (no content type unless `headers` gives one); any other
//!   JSON value is sent as JSON with `Content-Type: application/json` unless `headers` gives
//!   one. `null` is no body;
//! - `timeout`: a DUR (`500ms`, `10s`, `1m`...), default [`DEFAULT_TIMEOUT`]: the whole
//!   exchange, connecting to the last byte of the response, must fit in it. The job's own
//!   timeout still applies: the worker stops the job when it passes, whichever is shorter.
//!
//! Every request carries `User-Agent: tickq/VERSION`, `X-Tickq-Job-Id` (stable across
//! attempts: an idempotency key) and `X-Tickq-Attempt` (1 for the first run). Proxies come
//! from the server's `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`; redirects are followed (up to 10).
//!
//! Outcomes: a 2xx answer completes the job with the last [`TAIL_BYTES`] of the response body
//! (lossy UTF-8, trimmed) as its result. Any other status fails the attempt with
//! `HTTP <status>` and the body's tail, retried by the job's policy (4xx included: the kind
//! does not guess which client errors are permanent). Connection errors and timeouts fail the
//! attempt, retried too. A payload that does not validate kills the job without a request.
//! When the job is stopped (lease lost, cancelled, forced shutdown) the request is dropped,
//! which closes its connection.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;
use tickq::{Job, JobError};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

/// The job kind's name.
pub const KIND: &str = "http";

/// The request's time limit when the payload gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of the response body is kept (the last bytes).
const TAIL_BYTES: usize = 4096;

/// The methods a job may use.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers the HTTP client manages itself; a job cannot set them.
const CLIENT_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// An http job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPayload {
    /// The URL (http or https).
    pub url: String,
    /// The method [default: GET, or POST when there is a body].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body: a string as is, anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// A DUR [default: 30s].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A payload checked and turned into what the request needs.
#[derive(Debug)]
pub struct Request {
    pub url: Url,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl HttpPayload {
    /// Check every field; the error says which one is wrong and why.
    pub fn validate(&self) -> Result<Request, String> {
        let url = Url::parse(&self.url).map_err(|e| format!("url {:?}: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url {:?}: scheme {:?} is not supported (use http or https)",
                self.url,
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("url {:?} has no host", self.url));
        }

        let method = match &self.method {
            None if self.body.is_some() => Method::POST,
            None => Method::GET,
            Some(name) => {
                let upper = name.to_ascii_uppercase();
                if !METHODS.contains(&upper.as_str()) {
                    return Err(format!(
                        "method {name:?} is not supported (use one of {})",
                        METHODS.join(", ")
                    ));
                }
                Method::from_bytes(upper.as_bytes()).map_err(|e| format!("method {name:?}: {e}"))?
            }
        };

        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a header name"))?;
            if header.as_str().starts_with("x-tickq-") {
                return Err(format!(
                    "headers: {name} cannot be set by a job (X-Tickq-* are reserved)"
                ));
            }
            if CLIENT_HEADERS.contains(&header.as_str()) {
                return Err(format!(
                    "headers: {name} cannot be set by a job (the HTTP client sets it)"
                ));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("headers: the value of {name} is not a valid header value"))?;
            headers.append(header, value);
        }

        let body = match &self.body {
            None => None,
            Some(serde_json::Value::String(text)) => Some(text.clone().into_bytes()),
            Some(value) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(value.to_string().into_bytes())
            }
        };

        let timeout = match &self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => {
                let timeout = tickq::units::duration(text).map_err(|e| format!("timeout: {e}"))?;
                if timeout.is_zero() {
                    return Err("timeout: must be more than 0".into());
                }
                timeout
            }
        };

        Ok(Request {
            url,
            method,
            headers,
            body,
            timeout,
        })
    }
}

/// The handler for kind `http`. Its client (and connection pool) is shared by all jobs.
pub fn handler() -> anyhow::Result<impl tickq::Handler> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("tickq/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| anyhow::anyhow!("setting up the HTTP client of the http job kind: {e}"))?;
    let client = Arc::new(client);
    Ok(move |job: Job| {
        let client = client.clone();
        async move { run(&client, job).await }
    })
}

async fn run(client: &reqwest::Client, job: Job) -> Result<Option<String>, JobError> {
    let payload: HttpPayload = job.payload_as()?;
    let request = payload
        .validate()
        .map_err(|e| JobError::kill(format!("invalid http payload: {e}")))?;
    let timeout = request.timeout;
    let described = {
        // Error messages are stored with the job: no password in them.
        let mut url = request.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        format!("{} {url}", request.method)
    };

    let exchange = async {
        let mut builder = client
            .request(request.method, request.url)
            .headers(request.headers)
            .header("x-tickq-job-id", job.id())
            .header("x-tickq-attempt", job.attempt().to_string());
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(describe)?;
        let status = response.status();
        let mut tail = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("HTTP {status}, then reading the body: {}", describe(e)))?
        {
            tail.extend_from_slice(&chunk);
            // Trim in bulk, not on every chunk.
            if tail.len() > 4 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
        Ok::<_, String>((status, text_tail(&tail)))
    };

    let outcome = tokio::select! {
        outcome = tokio::time::timeout(timeout, exchange) => outcome,
        _ = job.stopped() => {
            // Dropping the exchange closes the connection; the worker ignores this answer.
            return Err(JobError::retry("stopped"));
        }
    };
    let (status, body) = match outcome {
        Err(_) => {
            return Err(JobError::retry(format!(
                "{described}: no complete response within the timeout of {}",
                tickq::units::format_duration(timeout)
            )));
        }
        Ok(Err(e)) => return Err(JobError::retry(format!("{described}: {e}"))),
        Ok(Ok(answer)) => answer,
    };
    if status.is_success() {
        return Ok((!body.is_empty()).then_some(body));
    }
    let body = if body.is_empty() {
        "(empty body)".to_owned()
    } else {
        format!("body: {body}")
    };
    Err(JobError::retry(format!(
        "HTTP {status} from {described}; {body}"
    )))
}

/// A client error with its causes ("error sending request: ... : Connection refused"),
/// without the URL (the caller names the request, password hidden).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The last [`TAIL_BYTES`] of `bytes` as text (lossy UTF-8, trimmed), not starting in the
/// middle of a character.
fn text_tail(bytes: &[u8]) -> String {
    let mut start = bytes.len().saturating_sub(TAIL_BYTES);
    // Skip UTF-8 continuation bytes (10xxxxxx) left over from a cut character.
    let mut skipped = 0;
    while start > 0 && skipped < 3 && bytes.get(start).is_some_and(|b| b & 0xC0 == 0x80) {
        start += 1;
        skipped += 1;
    }
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: serde_json::Value) -> Result<Request, String> {
        let p: HttpPayload = serde_json::from_value(json).map_err(|e| e.to_string())?;
        p.validate()
    }

    #[test]
    fn payload_defaults() {
        let r = validate(serde_json::json!({"url": "http://127.0.0.1:9/x"})).unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.timeout, DEFAULT_TIMEOUT);
        assert!(r.body.is_none());
        assert!(r.headers.is_empty());

        let r = validate(serde_json::json!({"url": "https://h/", "body": {"a": 1}})).unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        assert_eq!(r.body.unwrap(), br#"{"a":1}"#);

        let r = validate(serde_json::json!({
            "url": "https://h/", "method": "put", "body": "raw", "timeout": "1m30s",
            "headers": {"content-type": "text/csv"},
        }))
        .unwrap();
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.headers[CONTENT_TYPE], "text/csv");
        assert_eq!(r.body.unwrap(), b"raw");
        assert_eq!(r.timeout, Duration::from_secs(90));

        // A JSON body keeps the job's content type.
        let r = validate(serde_json::json!({
            "url": "https://h/", "body": [1], "headers": {"Content-Type": "application/x+json"},
        }))
        .unwrap();
        assert_eq!(r.headers[CONTENT_TYPE], "application/x+json");
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        for (json, needle) in [
            (serde_json::json!({}), "missing field `url`"),
            (
                serde_json::json!({"url": "http://h/", "verb": "GET"}),
                "unknown field `verb`",
            ),
            (serde_json::json!({"url": "ftp://h/x"}), "scheme \"ftp\""),
            (serde_json::json!({"url": "not a url"}), "url \"not a url\""),
            (serde_json::json!({"url": "http://"}), "url \"http://\""),
            (
                serde_json::json!({"url": "http://h/", "method": "BREW"}),
                "method \"BREW\" is not supported",
            ),
            (
                serde_json::json!({"url": "http://h/", "headers": {"a b": "1"}}),
                "not a header name",
            ),
            (
                serde_json::json!({"url": "http://h/", "headers": {"a": "x\ny"}}),
                "not a valid header value",
            ),
            (
                serde_json::json!({"url": "http://h/", "headers": {"X-Tickq-Attempt": "9"}}),
                "reserved",
            ),
            (
                serde_json::json!({"url": "http://h/", "headers": {"Content-Length": "9"}}),
                "the HTTP client sets it",
            ),
            (
                serde_json::json!({"url": "http://h/", "timeout": "10"}),
                "timeout: invalid duration",
            ),
            (
                serde_json::json!({"url": "http://h/", "timeout": "0s"}),
                "more than 0",
            ),
            (
                serde_json::json!({"url": "http://h/", "headers": {"a": 1}}),
                "invalid type",
            ),
        ] {
            let err = validate(json.clone()).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn tails_do_not_start_inside_a_character() {
        assert_eq!(text_tail(b"  ok\n"), "ok");
        let mut long = "é".repeat(TAIL_BYTES); // 2 bytes each: the cut can fall mid-character
        long.push('x');
        let tail = text_tail(long.as_bytes());
        assert!(!tail.contains('\u{fffd}'), "{tail}");
        assert!(tail.ends_with("éx"));
        assert!(tail.len() <= TAIL_BYTES);
    }
}
