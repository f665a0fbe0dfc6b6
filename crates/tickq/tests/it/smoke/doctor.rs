//! The deployment checks against real redis-servers, each set up to fail one check.

use tickq::Client;
use tickq::doctor::{Check, Finding, Report, Severity};
use tickq_testkit::TestRedis;

async fn report(url: &str) -> Report {
    Client::connect(url)
        .await
        .unwrap()
        .doctor()
        .run()
        .await
        .unwrap()
}

fn finding(report: &Report, check: Check) -> &Finding {
    report
        .findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no {check:?} finding: {report:?}"))
}

#[tokio::test]
async fn a_sound_redis_passes_every_check() {
    let redis = TestRedis::start();
    let report = report(&redis.url()).await;
    assert!(report.sound, "{report:#?}");
    assert_eq!(report.problems().count(), 0, "{report:#?}");
    assert!(
        finding(&report, Check::RedisVersion)
            .message
            .starts_with("Redis 7")
            || finding(&report, Check::RedisVersion)
                .message
                .starts_with("Valkey")
    );
    assert!(
        finding(&report, Check::Acl).message.contains("ACL DRYRUN"),
        "the default user may ask: {report:#?}"
    );
}

#[tokio::test]
async fn an_evicting_policy_fails_and_persistence_off_warns() {
    let redis = TestRedis::builder()
        .appendonly(false)
        .extra_args(["--maxmemory-policy", "allkeys-lru"])
        .start();
    let report = report(&redis.url()).await;
    assert!(!report.sound, "{report:#?}");
    let eviction = finding(&report, Check::Eviction);
    assert_eq!(eviction.severity, Severity::Error);
    assert!(eviction.message.contains("allkeys-lru"), "{eviction:?}");
    let persistence = finding(&report, Check::Persistence);
    assert_eq!(persistence.severity, Severity::Warning);
    assert!(
        persistence.message.contains("restart loses every job"),
        "{persistence:?}"
    );
}

#[tokio::test]
async fn memory_near_maxmemory_is_a_problem() {
    let redis = TestRedis::builder()
        .extra_args(["--maxmemory", "1mb"])
        .start();
    let report = report(&redis.url()).await;
    let memory = finding(&report, Check::Memory);
    // An empty Redis already uses most of 1 MB (over 75%, the warning line).
    assert_ne!(memory.severity, Severity::Ok, "{memory:?}");
    assert!(memory.message.contains("maxmemory"), "{memory:?}");
}

#[tokio::test]
async fn a_missing_acl_permission_is_named_both_when_asked_and_when_tried() {
    let redis = TestRedis::builder().tcp().start();
    let mut admin = redis.sync_conn();
    let port = redis.port().unwrap();
    for (user, extra) in [
        // May use ACL DRYRUN, so nothing is run.
        ("asker", "+acl|whoami +acl|dryrun"),
        // May not: each command is tried on throwaway keys.
        ("trier", ""),
    ] {
        let mut setuser = redis::cmd("ACL");
        setuser
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(">pw")
            .arg("~tickq:*")
            .arg("+@all")
            .arg("-xadd")
            .arg("-acl");
        for rule in extra.split_whitespace() {
            setuser.arg(rule);
        }
        setuser.exec(&mut admin).unwrap();
        let url = format!("redis://{user}:pw@127.0.0.1:{port}");
        let report = report(&url).await;
        let acl = finding(&report, Check::Acl);
        assert_eq!(acl.severity, Severity::Error, "{user}: {report:#?}");
        assert!(acl.message.contains("may not run xadd"), "{user}: {acl:?}");
        assert!(acl.fix.as_deref().unwrap().contains("+xadd"), "{acl:?}");
        assert!(!report.sound);
    }
    // The tried keys are gone.
    let keys: Vec<String> = redis::cmd("KEYS").arg("tickq:*").query(&mut admin).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
