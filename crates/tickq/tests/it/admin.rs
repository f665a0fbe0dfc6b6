//! The admin core on a real redis-server: bulk actions.

use crate::common::count;
use tickq::{Client, JobAction, JobFilter, JobState, NewJob, Retention};
use tickq_testkit::TestRedis;

#[tokio::test]
async fn a_bulk_kill_larger_than_the_dead_set_is_refused_and_changes_nothing() {
    let redis = TestRedis::start();
    let client = Client::connect(&redis.url())
        .await
        .unwrap()
        .with_retention(Retention {
            dead_max: 5,
            ..Retention::default()
        });
    let jobs = (0..8).map(|i| NewJob::new("q", if i < 4 { "a" } else { "b" }));
    client.enqueue_bulk(jobs.collect()).await.unwrap();
    let inspector = client.inspector();

    let err = inspector
        .bulk(
            "q",
            JobState::Pending,
            &JobFilter::default(),
            JobAction::Kill,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), tickq::ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("at most 5"), "{err}");
    assert_eq!(count(&client, "q", JobState::Pending).await, 8);
    assert_eq!(count(&client, "q", JobState::Dead).await, 0);

    // A dry run only counts; a kill that fits goes through, every killed job kept.
    let dry = inspector
        .bulk(
            "q",
            JobState::Pending,
            &JobFilter::default(),
            JobAction::Kill,
            true,
        )
        .await
        .unwrap();
    assert_eq!((dry.matched, dry.acted), (8, 0));
    let only_a = JobFilter {
        kind: Some("a".into()),
        ..JobFilter::default()
    };
    let done = inspector
        .bulk("q", JobState::Pending, &only_a, JobAction::Kill, false)
        .await
        .unwrap();
    assert_eq!((done.matched, done.acted), (4, 4));
    assert_eq!(count(&client, "q", JobState::Dead).await, 4);
}
