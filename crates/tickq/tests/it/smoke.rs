use std::time::Duration;
use tickq::{Client, Job, JobError, JobState, NewJob, Worker};
use tickq_testkit::TestRedis;

#[tokio::test]
async fn enqueue_run_complete() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            client
                .enqueue(NewJob::new("q", "echo").payload(i.into()))
                .await
                .unwrap()
                .id,
        );
    }
    let worker = Worker::builder(&client)
        .queue("q", 1)
        .concurrency(8)
        .handler("echo", |job: Job| async move {
            Ok::<_, JobError>(job.payload().clone())
        })
        .build()
        .unwrap();
    let handle = worker.shutdown_handle();
    let run = tokio::spawn(async move { worker.run().await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = client.inspector().counts("q").await.unwrap();
        if c.states[&JobState::Completed] == 50 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let j = client.job("q", &ids[7]).await.unwrap();
    assert_eq!(j.result.as_deref(), Some("7"));
    handle.shutdown();
    run.await.unwrap().unwrap();
}

/// TLS to a real redis-server with a private CA and client certificates.
#[path = "smoke/tls.rs"]
mod tls;

/// `Client::doctor` against real servers set up soundly and unsoundly.
#[path = "smoke/doctor.rs"]
mod doctor;
