//! Every route the OpenAPI document lists is called, with good input and with malformed path,
//! query and body; none answers a 5xx, and every error is the JSON error shape.

use crate::util::App;
use axum::http::{Method, StatusCode};
use std::time::Duration;
use tickq::NewJob;

/// The document, as served.
async fn document(app: &App) -> serde_json::Value {
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// Every (method, path template) of the document.
fn operations(doc: &serde_json::Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            out.push((m, path.clone()));
        }
    }
    out
}

fn fill(template: &str, queue: &str, id: &str, name: &str) -> String {
    template
        .replace("{queue}", queue)
        .replace("{id}", id)
        .replace("{name}", name)
}

fn assert_error_shape(what: &str, status: StatusCode, body: &serde_json::Value) {
    assert!(!status.is_server_error(), "{what}: {status} {body}");
    if !status.is_success() {
        assert!(body["error"]["kind"].is_string(), "{what}: {status} {body}");
        assert!(
            body["error"]["message"].is_string(),
            "{what}: {status} {body}"
        );
    }
}

#[tokio::test]
async fn every_listed_route_answers_without_a_server_error() {
    let app = App::open().await;
    app.client
        .enqueue(
            NewJob::new("q", "k")
                .id("j1")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 24, "{ops:?}");
    for (method, template) in &ops {
        if template == "/api/events" {
            continue; // a stream: tested in events.rs
        }
        // Good input: a queue and a job that exist, bodies the route takes.
        let path = fill(template, "q", "j1", "nightly");
        let body = match (method.as_str(), template.as_str()) {
            ("POST", "/api/queues/{queue}/jobs") => Some(r#"{"kind": "k", "payload": {"a": 1}}"#),
            ("POST", "/api/queues/{queue}/bulk") => {
                Some(r#"{"action": "kill", "state": "scheduled", "dry_run": true}"#)
            }
            ("PUT", "/api/queues/{queue}/limits") => Some(r#"{"concurrency": 3}"#),
            ("POST", "/api/login") => Some(r#"{"token": "x"}"#),
            ("POST", "/api/queues/{queue}/purge") => None,
            ("POST", _) => Some("{}"),
            _ => None,
        };
        let path = if template.ends_with("/purge") {
            format!("{path}?state=dead")
        } else {
            path
        };
        let (status, json) = app.call(method.clone(), &path, body, &[]).await;
        assert_error_shape(&format!("{method} {path}"), status, &json);

        // A malformed path parameter.
        let bad = fill(template, "bad%7Bq%7D", "bad%20id", "no%20such");
        let (status, json) = app.call(method.clone(), &bad, body, &[]).await;
        assert_error_shape(&format!("{method} {bad}"), status, &json);

        // A malformed query.
        let query = format!(
            "{path}{}limit=abc&state=nope&from=yesterday&cursor=zz",
            if path.contains('?') { "&" } else { "?" }
        );
        let (status, json) = app.call(method.clone(), &query, body, &[]).await;
        assert_error_shape(&format!("{method} {query}"), status, &json);

        // A malformed body.
        if method != Method::GET {
            let (status, json) = app
                .call(method.clone(), &path, Some("{not json"), &[])
                .await;
            assert_error_shape(
                &format!("{method} {path} with a broken body"),
                status,
                &json,
            );
        }
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = App::open().await;
    let (status, json) = app.get("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["kind"], "not_found");
    let (status, json) = app.call(Method::DELETE, "/api/stats", None, &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not take DELETE")
    );
}

#[tokio::test]
async fn enqueue_read_and_act_on_a_job() {
    let app = App::open().await;
    let (status, job) = app
        .post(
            "/api/queues/emails/jobs",
            r#"{"kind": "welcome", "payload": {"user": 7}, "id": "w1", "in": "1h",
                "max_attempts": 3, "priority": 5, "timeout": "30s"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "scheduled");
    let (status, again) = app
        .post(
            "/api/queues/emails/jobs",
            r#"{"kind": "welcome", "id": "w1"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["error"]["kind"], "already_exists");
    assert_eq!(again["existing"]["id"], "w1");

    let (_, info) = app.get("/api/jobs/w1").await;
    assert_eq!(info["payload"]["user"], 7);
    assert_eq!(info["max_attempts"], 3);
    assert_eq!(info["priority"], 5);
    assert_eq!(info["timeout_ms"], 30000);

    let (status, killed) = app.post("/api/jobs/w1/kill", "").await;
    assert_eq!(status, StatusCode::OK, "{killed}");
    assert_eq!(killed["previous_state"], "scheduled");
    assert_eq!(killed["state"], "dead");
    let (status, again) = app.post("/api/jobs/w1/kill", "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["error"]["kind"], "conflict");

    let (_, page) = app
        .get("/api/queues/emails/jobs?state=dead&q=%22user%22")
        .await;
    assert_eq!(page["jobs"][0]["id"], "w1");
    let (_, page) = app
        .get("/api/queues/emails/jobs?state=dead&q=nothing-like-it")
        .await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 0);

    let (status, retried) = app.post("/api/jobs/w1/retry", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retried["state"], "pending");
    let (status, deleted) = app.call(Method::DELETE, "/api/jobs/w1", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["deleted"], true);
    let (status, _) = app.get("/api/jobs/w1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cursor_pages_neither_repeat_nor_skip_while_jobs_move() {
    let app = App::open().await;
    let jobs = (0..250)
        .map(|i| NewJob::new("q", "k").id(format!("j{i:03}")))
        .collect();
    app.client.enqueue_bulk(jobs).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/api/queues/q/jobs?state=pending&limit=40&cursor={}",
                urlencode(c)
            ),
            None => "/api/queues/q/jobs?state=pending&limit=40".to_owned(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for job in page["jobs"].as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_owned());
        }
        // Between pages, jobs move: the page's last job and one far ahead leave pending.
        round += 1;
        if let Some(last) = seen.last() {
            let _ = app.client.inspector().kill(last).await;
        }
        let _ = app
            .client
            .inspector()
            .kill(&format!("j{:03}", 249 - round))
            .await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a job was listed twice");
    // Every job that stayed pending the whole time was listed.
    let killed_ahead: Vec<String> = (1..=round).map(|r| format!("j{:03}", 249 - r)).collect();
    for i in 0..250 {
        let id = format!("j{i:03}");
        if !killed_ahead.contains(&id) {
            assert!(seen.contains(&id), "{id} was skipped");
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn bulk_retry_of_dead_jobs_by_filter() {
    let app = App::open().await;
    let jobs = (0..30)
        .map(|i| {
            NewJob::new("q", "k")
                .id(format!("d{i}"))
                .payload(serde_json::json!({"tenant": if i % 3 == 0 { "acme" } else { "other" }}))
                .delay(Duration::from_secs(3600))
        })
        .collect();
    app.client.enqueue_bulk(jobs).await.unwrap();
    for i in 0..30 {
        app.client.inspector().kill(&format!("d{i}")).await.unwrap();
    }
    let body = r#"{"action": "retry", "state": "dead", "q": "acme", "dry_run": true}"#;
    let (_, counted) = app.post("/api/queues/q/bulk", body).await;
    assert_eq!(counted, serde_json::json!({"matched": 10, "acted": 0}));
    let body = r#"{"action": "retry", "state": "dead", "q": "acme"}"#;
    let (_, done) = app.post("/api/queues/q/bulk", body).await;
    assert_eq!(done, serde_json::json!({"matched": 10, "acted": 10}));
    let counts = app.client.inspector().counts("q").await.unwrap();
    assert_eq!(counts.states[&tickq::JobState::Pending], 10);
    assert_eq!(counts.states[&tickq::JobState::Dead], 20);
}

#[tokio::test]
async fn the_openapi_document_passes_a_validator() {
    let app = App::open().await;
    let doc = document(&app).await;
    let dir = std::env::temp_dir().join(format!("tickq-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    // `./dev test` installs the validator (PyPI's openapi-spec-validator) into .venv-tools.
    let validator = std::env::var("TICKQ_OPENAPI_VALIDATOR")
        .unwrap_or_else(|_| "openapi-spec-validator".to_owned());
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {validator} ({e}); run the tests with ./dev test, which installs it")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_workflow_document_and_its_actions() {
    let app = App::open().await;
    let flow = tickq::Workflow::new("q", "nightly")
        .id("n1")
        .step(tickq::Step::new("a", NewJob::new("q", "k")))
        .step(tickq::Step::new("b", NewJob::new("q", "k")).after(["a"]));
    app.client.submit_flow(flow).await.unwrap();

    let (status, doc) = app.get("/api/flows/n1").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["id"], "n1");
    assert_eq!(doc["name"], "nightly");
    assert_eq!(doc["queue"], "q");
    assert_eq!(doc["state"], "waiting");
    assert_eq!(
        doc["counts"],
        serde_json::json!({"pending": 1, "waiting": 1})
    );
    let b = &doc["steps"][1];
    assert_eq!(b["id"], "b");
    assert_eq!(b["job_id"], "flow:n1:b");
    assert_eq!(b["state"], "waiting");
    assert_eq!(b["after"], serde_json::json!(["a"]));
    assert_eq!(b["on_parent_failure"], "cancel");

    let (status, out) = app.post("/api/flows/n1/cancel", "").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["cancelled"], 2);
    let (_, doc) = app.get("/api/flows/n1").await;
    assert_eq!(doc["state"], "cancelled");
    let (status, out) = app.post("/api/flows/n1/retry", "").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["retried"], 2);
    let (_, doc) = app.get("/api/flows/n1").await;
    assert_eq!(doc["state"], "waiting");
    assert_eq!(doc["cancel_requested"], false);

    let (status, err) = app.get("/api/flows/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["error"]["kind"], "not_found");

    // The list: every queue's by default, or one queue's.
    let other = tickq::Workflow::new("r", "other")
        .id("n2")
        .step(tickq::Step::new("a", NewJob::new("r", "k")));
    app.client.submit_flow(other).await.unwrap();
    let (status, list) = app.get("/api/flows").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["n2", "n1"], "newest first: {list}");
    assert_eq!(list["flows"][1]["state"], "waiting");
    assert_eq!(list["flows"][1]["steps"], 2);
    assert_eq!(list["flows"][1]["queue"], "q");
    let (_, list) = app.get("/api/flows?queue=q&limit=5").await;
    assert_eq!(list["flows"].as_array().unwrap().len(), 1, "{list}");
    let (status, err) = app.get("/api/flows?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, err) = app.get("/api/flows?bogus=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
}

#[tokio::test]
async fn a_limits_change_keeps_the_limits_it_leaves_out() {
    let app = App::open().await;
    let put = |body: &'static str| {
        let app = &app;
        async move {
            let (status, view) = app
                .call(Method::PUT, "/api/queues/q/limits", Some(body), &[])
                .await;
            assert_eq!(status, StatusCode::OK, "{body}: {view}");
            view["limits"].clone()
        }
    };
    assert_eq!(put(r#"{"concurrency": 3}"#).await["concurrency"], 3);
    let both = put(r#"{"rate": "5/1s"}"#).await;
    assert_eq!(both["concurrency"], 3, "{both}");
    assert!(
        both["rate"].is_object() || both["rate"].is_string(),
        "{both}"
    );
    let rate_only = put(r#"{"concurrency": null}"#).await;
    assert!(rate_only["concurrency"].is_null(), "{rate_only}");
    assert_eq!(rate_only["rate"], both["rate"], "{rate_only}");
    let (status, err) = app
        .call(
            Method::PUT,
            "/api/queues/q/limits",
            Some(r#"{"rate": "fast"}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (_, now) = app.get("/api/queues/q/limits").await;
    assert_eq!(now["limits"], rate_only, "a refused change changes nothing");
}

#[tokio::test]
async fn a_sharded_queue_lists_its_shards_as_the_cli_does() {
    let app = App::open().await;
    app.client.shard_queue("hot", 3).await.unwrap();
    let jobs = (0..9).map(|_| NewJob::new("hot", "k")).collect();
    app.client.enqueue_bulk(jobs).await.unwrap();
    let (status, shards) = app
        .call(Method::GET, "/api/queues/hot/shards", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{shards}");
    let shards = shards.as_array().expect("an array").clone();
    assert_eq!(
        shards.len(),
        4,
        "the base queue and three shards: {shards:?}"
    );
    assert!(shards[0]["shard"].is_null());
    assert_eq!(
        shards[1..]
            .iter()
            .map(|s| s["shard"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let pending: u64 = shards
        .iter()
        .map(|s| s["counts"]["states"]["pending"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(pending, 9, "{shards:?}");
    // The same document as the inspector's (and so `tickq queue shards --json`).
    let direct = app.client.inspector().shards("hot").await.unwrap();
    assert_eq!(
        serde_json::Value::Array(shards),
        serde_json::to_value(direct).unwrap()
    );

    // A queue without shards answers one entry; a bad name is a 400.
    let (status, plain) = app
        .call(Method::GET, "/api/queues/q/shards", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert_eq!(plain.as_array().map(Vec::len), Some(1), "{plain}");
    let (status, _) = app
        .call(Method::GET, "/api/queues/bad%20name/shards", None, &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
