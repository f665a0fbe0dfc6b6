//! The SSE stream: a job's life shows up in it, and watching costs Redis one PUBLISH per script
//! call, not per job.

use crate::util::App;
use axum::body::Body;
use axum::http::Request;
use futures::StreamExt as _;
use std::time::{Duration, Instant};
use tickq::{Job, JobError, NewJob, Worker};
use tower::ServiceExt as _;

/// Read SSE frames until `done` says so or the deadline passes; answers (event, data) pairs.
async fn read_until(
    stream: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    buffer: &mut String,
    deadline: Instant,
    mut done: impl FnMut(&str, &serde_json::Value) -> bool,
) {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut event = "";
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let json = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
            if done(event, &json) {
                return;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the stream did not show it in time");
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("the stream ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_subscriber_sees_a_job_enqueued_started_and_completed() {
    let app = App::open().await;
    let req = Request::builder()
        .uri("/api/events")
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.into_body().into_data_stream();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The first message is the counts as they are.
    read_until(&mut stream, &mut buffer, deadline, |event, _| {
        event == "counts"
    })
    .await;

    let worker = Worker::builder(&app.client)
        .queue("q", 1)
        .handler("k", |_job: Job| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, JobError>(())
        })
        .build()
        .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(async move { worker.run().await });

    let sent = Instant::now();
    app.client
        .enqueue(NewJob::new("q", "k").id("watched"))
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut first_at = None;
    read_until(&mut stream, &mut buffer, deadline, |event, data| {
        if event == "jobs" {
            for e in data["events"].as_array().unwrap() {
                if e["id"] == "watched" {
                    first_at.get_or_insert_with(|| sent.elapsed());
                    seen.push(e["state"].as_str().unwrap().to_owned());
                }
            }
        }
        seen.contains(&"completed".to_owned())
    })
    .await;
    println!(
        "first event after {:?}, completed seen after {:?}",
        first_at.unwrap(),
        sent.elapsed()
    );
    assert_eq!(seen, ["pending", "active", "completed"]);
    // A quiet system sends a change at once (generous bound: the machine may be loaded).
    assert!(first_at.unwrap() < Duration::from_secs(1), "{first_at:?}");
    stop.shutdown();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn with_nobody_watching_events_cost_one_publish_per_script_call() {
    let app = App::open().await;
    let mut conn = app.redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let jobs = (0..2000)
        .map(|i| NewJob::new("q", "k").payload(i.into()))
        .collect();
    app.client.enqueue_bulk(jobs).await.unwrap();
    let worker = Worker::builder(&app.client)
        .queue("q", 1)
        .concurrency(64)
        .handler("k", |_job: Job| async move { Ok::<_, JobError>(()) })
        .build()
        .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(async move { worker.run().await });
    let inspector = app.client.inspector();
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspector.counts("q").await.unwrap().processed < 2000 {
        assert!(Instant::now() < deadline, "the jobs did not complete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.shutdown();
    run.await.unwrap().unwrap();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let calls = |cmd: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let scripts = calls("evalsha") + calls("eval");
    let transactions = calls("exec");
    let publishes = calls("publish");
    println!("{publishes} PUBLISH for {scripts} script calls and {transactions} transactions");
    assert!(publishes > 0);
    assert!(
        publishes <= scripts + transactions,
        "{publishes} PUBLISH for {scripts} script calls and {transactions} transactions"
    );
    assert!(publishes < 2000, "one PUBLISH per job: {publishes}");
}
