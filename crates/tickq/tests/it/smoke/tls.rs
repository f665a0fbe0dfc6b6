//! TLS against a real `redis-server --tls-port` whose certificate comes from a private CA.

use std::time::Duration;
use tickq::{Client, ConnectOptions, ErrorKind, Job, JobError, JobState, NewJob, TlsFiles, Worker};
use tickq_testkit::TestRedis;

/// Enqueue, run by a worker (whose fetcher has its own blocking connection), read back.
async fn run_one_job(client: &Client) {
    let id = client
        .enqueue(NewJob::new("tls", "echo").payload(7.into()))
        .await
        .unwrap()
        .id;
    let worker = Worker::builder(client)
        .queue("tls", 1)
        .handler("echo", |job: Job| async move {
            Ok::<_, JobError>(job.payload().clone())
        })
        .build()
        .unwrap();
    let handle = worker.shutdown_handle();
    let run = tokio::spawn(async move { worker.run().await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = client.job("tls", &id).await.unwrap();
        if job.state == JobState::Completed {
            assert_eq!(job.result.as_deref(), Some("7"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_private_ca_verifies_the_server() {
    let redis = TestRedis::builder().tls().start();
    let certs = redis.certs().unwrap();
    let options = ConnectOptions::new().tls(TlsFiles::new().ca_file(certs.ca()));
    let client = Client::connect_with(&redis.url(), &options).await.unwrap();
    run_one_job(&client).await;
}

#[tokio::test]
async fn a_server_from_an_unknown_ca_is_refused_with_a_certificate_message() {
    let redis = TestRedis::builder().tls().start();
    let certs = redis.certs().unwrap();
    for options in [
        // Not in the public roots either.
        ConnectOptions::new(),
        ConnectOptions::new().tls(TlsFiles::new().ca_file(certs.other_ca())),
    ] {
        let err = Client::connect_with(&redis.url(), &options)
            .await
            .expect_err("an untrusted server is refused");
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(err.message().contains("not trusted"), "{err}");
        assert!(err.message().contains("set ca_file"), "{err}");
        assert!(!err.message().contains("no Redis"), "{err}");
    }
}

#[tokio::test]
async fn a_server_that_requires_client_certificates_gets_one() {
    let redis = TestRedis::builder().tls_client_certs().start();
    let certs = redis.certs().unwrap();
    let tls = TlsFiles::new()
        .ca_file(certs.ca())
        .client_cert(certs.client_cert(), certs.client_key());
    let client = Client::connect_with(&redis.url(), &ConnectOptions::new().tls(tls))
        .await
        .unwrap();
    run_one_job(&client).await;

    let without = ConnectOptions::new().tls(TlsFiles::new().ca_file(certs.ca()));
    let err = Client::connect_with(&redis.url(), &without)
        .await
        .expect_err("no client certificate, no connection");
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.message().contains("set cert_file and key_file"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_named_before_connecting() {
    let redis = TestRedis::builder().tls().start();
    let certs = redis.certs().unwrap();
    let cases = [
        (
            redis.plain_url(),
            TlsFiles::new().ca_file(certs.ca()),
            "not a TLS URL",
        ),
        (
            redis.url(),
            TlsFiles::new().ca_file(certs.dir().join("missing.pem")),
            "missing.pem",
        ),
        (
            redis.url(),
            TlsFiles::new().ca_file(certs.client_key()),
            "holds no PEM certificate",
        ),
        (
            redis.url(),
            {
                let mut only_cert = TlsFiles::new();
                only_cert.cert_file = Some(certs.client_cert());
                only_cert
            },
            "set cert_file and key_file",
        ),
        (
            redis.url(),
            TlsFiles::new().client_cert(certs.client_cert(), certs.ca()),
            "no PEM private key",
        ),
    ];
    for (url, tls, why) in cases {
        let err = Client::connect_with(&url, &ConnectOptions::new().tls(tls.clone()))
            .await
            .err()
            .unwrap_or_else(|| panic!("{tls:?} connected"));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.message().contains(why), "{why}: {err}");
    }
}

/// A Cluster whose nodes speak TLS only, also between themselves: `rediss-cluster://` with the
/// private CA reaches every node (the seed, and those the slot map names).
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_cluster_with_a_private_ca_runs_jobs_on_every_node() {
    let cluster = tickq_testkit::TestCluster::start_tls(3);
    let url = cluster.cluster_url();
    assert!(url.starts_with("rediss-cluster://"), "{url}");
    let ca = cluster.certs().unwrap().ca();
    let options = ConnectOptions::new().tls(TlsFiles::new().ca_file(&ca));
    let client = Client::connect_with(&url, &options).await.unwrap();
    // Queues whose hash tags fall on different nodes.
    for queue in ["tls", "a", "b", "c", "d"] {
        let id = client
            .enqueue(NewJob::new(queue, "echo").payload(1.into()))
            .await
            .unwrap()
            .id;
        assert_eq!(
            client.job(queue, &id).await.unwrap().state,
            JobState::Pending
        );
    }
    run_one_job(&client).await;

    let untrusted =
        ConnectOptions::new().tls(TlsFiles::new().ca_file(cluster.certs().unwrap().other_ca()));
    let err = Client::connect_with(&url, &untrusted).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
}
