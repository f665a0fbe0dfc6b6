//! The testkit against a real redis-server: every test starts its own.

use std::collections::HashSet;
use std::time::Duration;

use redis::{AsyncConnectionConfig, Commands};
use tickq_testkit::{TestCluster, TestRedis};

fn ping(conn: &mut redis::Connection) -> String {
    redis::cmd("PING").query(conn).expect("PING")
}

/// Whether a process with this pid exists (zombies included).
fn process_exists(pid: u32) -> bool {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn unix_socket_server_answers_ping() {
    let redis = TestRedis::start();
    assert!(redis.url().starts_with("redis+unix:///"), "{}", redis.url());
    assert_eq!(redis.port(), None);
    assert_eq!(ping(&mut redis.sync_conn()), "PONG");
}

#[tokio::test]
async fn async_connection_answers_ping() {
    let redis = TestRedis::start();
    let mut conn = redis.conn().await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn tcp_server_answers_ping() {
    let redis = TestRedis::builder().tcp().start();
    let port = redis.port().expect("a TCP server has a port");
    assert_ne!(port, 6379);
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(ping(&mut redis.sync_conn()), "PONG");
}

#[test]
fn builder_passes_extra_args_and_appendonly() {
    let redis = TestRedis::builder()
        .appendonly(false)
        .extra_args(["--maxmemory", "10mb"])
        .start();
    let mut conn = redis.sync_conn();
    let maxmemory: (String, u64) = redis::cmd("CONFIG")
        .arg(&["GET", "maxmemory"])
        .query(&mut conn)
        .unwrap();
    assert_eq!(maxmemory.1, 10 * 1024 * 1024);
    let appendonly: (String, String) = redis::cmd("CONFIG")
        .arg(&["GET", "appendonly"])
        .query(&mut conn)
        .unwrap();
    assert_eq!(appendonly.1, "no");
}

#[test]
fn restart_keeps_data() {
    let mut redis = TestRedis::start();
    let old_pid = redis.pid();
    let _: () = redis.sync_conn().set("key", "value").unwrap();

    redis.restart();

    assert_ne!(redis.pid(), old_pid);
    assert!(!process_exists(old_pid));
    let value: String = redis.sync_conn().get("key").unwrap();
    assert_eq!(value, "value");
}

#[test]
fn tcp_restart_keeps_the_port() {
    let mut redis = TestRedis::builder().tcp().start();
    let url = redis.url();
    let client = redis.client();
    let _: () = client.get_connection().unwrap().set("key", 1).unwrap();

    redis.restart();

    assert_eq!(redis.url(), url);
    let value: i64 = client.get_connection().unwrap().get("key").unwrap();
    assert_eq!(value, 1);
}

#[test]
fn kill_and_start_again_keep_acknowledged_writes() {
    let mut redis = TestRedis::start();
    let mut conn = redis.sync_conn();
    for i in 0..100 {
        let _: () = conn.rpush("list", i).unwrap();
    }
    let old_pid = redis.pid();

    redis.kill();
    assert!(!redis.is_running());
    assert!(!process_exists(old_pid));
    redis.start_again();

    let list: Vec<i64> = redis.sync_conn().lrange("list", 0, -1).unwrap();
    assert_eq!(list, (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn pause_stalls_and_resume_recovers() {
    let mut redis = TestRedis::start();
    let config =
        AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(200)));
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();

    redis.pause();
    assert!(redis.is_paused());
    let err = redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "expected a timeout, got {err}");

    redis.resume();
    let mut fresh = redis.conn().await;
    let pong: String = redis::cmd("PING").query_async(&mut fresh).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn parallel_servers_are_separate() {
    let a = TestRedis::builder().tcp().start();
    let b = TestRedis::builder().tcp().start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());

    let _: () = a.sync_conn().set("only-in-a", 1).unwrap();
    let in_b: bool = b.sync_conn().exists("only-in-a").unwrap();
    assert!(!in_b);
}

#[test]
fn drop_kills_the_server_and_removes_its_dir() {
    let redis = TestRedis::start();
    let (pid, dir) = (redis.pid(), redis.dir().to_owned());
    drop(redis);
    assert!(!process_exists(pid));
    assert!(!dir.exists());

    let mut paused = TestRedis::start();
    paused.pause();
    let pid = paused.pid();
    drop(paused);
    assert!(!process_exists(pid));
}

#[test]
fn failed_start_reports_the_server_output() {
    let panic = std::panic::catch_unwind(|| {
        TestRedis::builder()
            .extra_args(["--no-such-directive", "x"])
            .start()
    })
    .expect_err("redis-server should reject the directive");
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains("exited during startup"), "{message}");
    assert!(message.contains("no-such-directive"), "{message}");
}

#[test]
fn cluster_serves_keys_in_every_slot_range() {
    let mut cluster = TestCluster::start(3);
    assert_eq!(cluster.urls().len(), 3);
    let ports: HashSet<_> = (0..3).map(|i| cluster.node(i).port()).collect();
    assert_eq!(ports.len(), 3);

    let mut conn = cluster.client().get_connection().unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        let _: () = conn.set(key, key).unwrap();
    }
    for key in &keys {
        let value: String = conn.get(key).unwrap();
        assert_eq!(&value, key);
    }
    for i in 0..3 {
        let size: u64 = redis::cmd("DBSIZE")
            .query(&mut cluster.node(i).sync_conn())
            .unwrap();
        assert!(size > 0, "node {i} holds no keys: slots are not spread");
    }

    let pids: Vec<u32> = (0..3).map(|i| cluster.node(i).pid()).collect();
    cluster.kill_node(1);
    assert!(!process_exists(pids[1]));
    drop(cluster);
    for pid in pids {
        assert!(!process_exists(pid));
    }
}

#[test]
fn cluster_with_replicas_fails_over_and_elects_a_replica_of_a_dead_primary() {
    // Three primaries: electing a dead primary's replica needs a majority of the primaries.
    let mut cluster = TestCluster::start_with_replicas(3);
    assert_eq!(cluster.urls().len(), 6);
    assert_eq!(cluster.replica_of(0), 3);
    assert_eq!(cluster.replica_of(1), 4);
    assert_eq!(cluster.role(3), "slave");

    // "{a}" hashes to slot 15495, which node 2 serves.
    let mut conn = cluster.client().get_connection().unwrap();
    let _: () = conn.set("{a}key", "before").unwrap();
    let replica = cluster.replica_of(2);
    cluster.failover(replica);
    assert_eq!(cluster.role(replica), "master");
    assert_eq!(cluster.role(2), "slave");
    assert_eq!(cluster.replica_of(replica), 2);

    // The new primary dies: its replica (the first primary) is elected back, with the data.
    cluster.kill_node(replica);
    cluster.wait_for_primary(2);
    let mut conn = cluster.client().get_connection().unwrap();
    let value: String = conn.get("{a}key").unwrap();
    assert_eq!(value, "before");
}

fn tls_client(redis: &TestRedis, client_cert: bool) -> redis::Client {
    // rustls picks no crypto provider by itself when the build could offer two.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = redis.certs().expect("a TLS server has certificates");
    let client_tls = client_cert.then(|| redis::ClientTlsConfig {
        client_cert: std::fs::read(certs.client_cert()).unwrap(),
        client_key: std::fs::read(certs.client_key()).unwrap(),
    });
    redis::Client::build_with_tls(
        redis.url(),
        redis::TlsCertificates {
            client_tls,
            root_cert: Some(std::fs::read(certs.ca()).unwrap()),
        },
    )
    .unwrap()
}

#[test]
fn tls_server_answers_over_tls_and_on_its_plain_socket() {
    let mut redis = TestRedis::builder().tls().start();
    assert!(
        redis.url().starts_with("rediss://127.0.0.1:"),
        "{}",
        redis.url()
    );
    assert!(redis.plain_url().starts_with("redis+unix://"));
    let mut tls = tls_client(&redis, false)
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(ping(&mut tls), "PONG");
    assert_eq!(ping(&mut redis.sync_conn()), "PONG");
    redis.restart();
    let mut tls = tls_client(&redis, false)
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(ping(&mut tls), "PONG");
}

#[test]
fn tls_server_with_client_certs_refuses_clients_without_one() {
    let redis = TestRedis::builder().tls_client_certs().start();
    let mut with_cert = tls_client(&redis, true)
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(ping(&mut with_cert), "PONG");
    let without = tls_client(&redis, false)
        .get_connection_with_timeout(Duration::from_secs(5))
        .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
    assert!(without.is_err(), "{without:?}");
}
