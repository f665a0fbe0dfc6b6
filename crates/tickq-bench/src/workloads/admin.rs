//! The admin surface under load: a client watching the live events while a queue drains, and
//! paging and searching a queue of N jobs (what the dashboard does with a big queue).

use super::{Measured, QUEUE, Sample, Target, connect, nearest_rank, pending};
use anyhow::{Context, Result, ensure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tickq::{Client, JobFilter, JobState, NewJob};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tickq-web router on a loopback port, and one client reading its `/api/events` stream.
pub struct Watcher {
    messages: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watcher {
    pub async fn start(client: &Client) -> Result<Watcher> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = tickq_web::router(client.clone(), Default::default());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .context("connecting to the events stream")?;
        conn.write_all(
            b"GET /api/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await?;
        let (messages, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (m, b) = (messages.clone(), bytes.clone());
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = conn.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                b.fetch_add(n as u64, Ordering::Relaxed);
                let events = buf[..n].windows(7).filter(|w| w == b"event: ").count();
                m.fetch_add(events as u64, Ordering::Relaxed);
            }
        });
        // Let the subscription start before the work does.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        Ok(Watcher {
            messages,
            bytes,
            tasks: vec![server, reader],
        })
    }

    /// Stop; answers the messages and bytes the watcher received.
    pub fn stop(self) -> (u64, u64) {
        for task in &self.tasks {
            task.abort();
        }
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// N pending jobs, one of which (in the middle) carries a needle in its payload.
pub async fn search(target: &Target, n: u64) -> Result<Measured> {
    ensure!(n >= 100, "search needs at least 100 jobs");
    let client = connect(target).await?;
    let before = Sample::take(target).await?;
    let needle_at = n / 2;
    let t0 = Instant::now();
    // In chunks: one call of a million jobs is its own problem (see the performance issue).
    let mut i = 0;
    while i < n {
        let end = (i + 20_000).min(n);
        let jobs = (i..end)
            .map(|k| {
                let mut payload = serde_json::json!({ "i": k, "tenant": "acme" });
                if k == needle_at {
                    payload["needle"] = "find-me-here".into();
                }
                NewJob::new(QUEUE, "noop").payload(payload)
            })
            .collect();
        client.enqueue_bulk(jobs).await?;
        i = end;
    }
    let enqueued_s = t0.elapsed().as_secs_f64();
    ensure!(pending(&client).await? == n, "enqueue incomplete");
    let after = Sample::take(target).await?;
    let inspector = client.inspector();
    let none = JobFilter::default();

    // The first page, as the dashboard opens a queue.
    let mut firsts = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let page = inspector
            .jobs(QUEUE, JobState::Pending, &none, None, 50)
            .await?;
        firsts.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(page.jobs.len() == 50, "a first page of 50");
    }
    firsts.sort_by(f64::total_cmp);

    // Pages of 1,000 from the top to the middle, then the page there.
    let mut cursor = None;
    let mut pages = 0u64;
    let walk = Instant::now();
    while pages < needle_at / 1000 {
        let page = inspector
            .jobs(QUEUE, JobState::Pending, &none, cursor.as_deref(), 1000)
            .await?;
        cursor = page.next_cursor;
        pages += 1;
    }
    let per_page_ms = walk.elapsed().as_secs_f64() * 1e3 / pages.max(1) as f64;
    let t = Instant::now();
    let deep = inspector
        .jobs(QUEUE, JobState::Pending, &none, cursor.as_deref(), 50)
        .await?;
    let deep_ms = t.elapsed().as_secs_f64() * 1e3;
    ensure!(deep.jobs.len() == 50, "a deep page of 50");

    // A payload search from the top that must walk half the queue to find its one job.
    let needle = JobFilter {
        payload: Some("find-me-here".into()),
        ..JobFilter::default()
    };
    let t = Instant::now();
    let mut cursor = None;
    let mut requests = 0u64;
    let mut scanned = 0u64;
    let found = loop {
        let page = inspector
            .jobs(QUEUE, JobState::Pending, &needle, cursor.as_deref(), 1)
            .await?;
        requests += 1;
        scanned += page.scanned;
        if let Some(job) = page.jobs.first() {
            break Some(job.payload["i"].as_u64());
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break None,
        }
    };
    let search_s = t.elapsed().as_secs_f64();
    ensure!(found == Some(Some(needle_at)), "the search found {found:?}");

    let mut m = Measured::default();
    m.metric("first page of 50, p50", "ms", nearest_rank(&firsts, 50.0));
    m.metric("first page of 50, p99", "ms", nearest_rank(&firsts, 99.0));
    m.metric("page of 1,000 while walking", "ms", per_page_ms);
    m.metric("page of 50 at the middle (cursor)", "ms", deep_ms);
    m.metric("search to the middle", "s", search_s);
    m.metric("search request", "ms", search_s * 1e3 / requests as f64);
    m.metric("search scan rate", "jobs/s", scanned as f64 / search_s);
    before.report_memory(&after, n, &mut m);
    m.fact("n", n);
    m.fact("enqueue_s", enqueued_s);
    m.fact("search_requests", requests);
    m.fact("search_scanned", scanned);
    Ok(m)
}
