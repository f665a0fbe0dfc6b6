//! The pending index as a list per priority (lua/prelude.lua, "Pending"): claim order across
//! the lists, jobs taken from the middle of a list, pages behind a cursor, and a queue an
//! older version wrote (one sorted set of ids) moved to the lists by its first pending write.
//! `members(Pending)` and `pending_lists` check the invariant between the lists and the set of
//! priorities on every read.

use super::*;
use crate::broker::read::{Page, PageQuery};

fn prio(id: &str, priority: i32) -> NewJob {
    job(id).priority(priority)
}

/// The ids a claim of up to `max` leased, in order.
async fn claimed(env: &Env, max: usize) -> Vec<String> {
    let batch = env.claim("w1", max).await;
    batch.jobs.into_iter().map(|j| j.id).collect()
}

/// The set of priorities as stored: (member, score), highest first.
async fn bands(env: &Env) -> Vec<(String, f64)> {
    env.conn
        .clone()
        .zrange_withscores(&env.keys.pending, 0, -1)
        .await
        .unwrap()
}

#[tokio::test]
async fn priorities_run_highest_first_and_fifo_within_one() {
    let env = start().await;
    for (id, p) in [("a", 0), ("b", 5), ("c", 0), ("d", -3), ("e", 5), ("f", 0)] {
        env.enqueue(prio(id, p)).await;
    }
    assert_eq!(
        env.members(JobState::Pending).await,
        ["b", "e", "a", "c", "f", "d"]
    );
    assert_eq!(
        bands(&env).await,
        [("5".into(), -5.0), ("0".into(), 0.0), ("-3".into(), 3.0)]
    );
    assert_eq!(counts_pending(&env).await, 6);

    // A claim that drains a priority exactly takes it out of the set.
    assert_eq!(claimed(&env, 2).await, ["b", "e"]);
    assert_eq!(bands(&env).await.len(), 2);
    // One that crosses priorities takes from the next list on.
    assert_eq!(claimed(&env, 4).await, ["a", "c", "f", "d"]);
    assert!(bands(&env).await.is_empty());
    assert_eq!(claimed(&env, 4).await, Vec::<String>::new());
    assert_eq!(counts_pending(&env).await, 0);
}

#[tokio::test]
async fn the_plain_transaction_and_the_script_share_the_lists() {
    let env = start().await;
    // Ids left to the broker: the transaction path (PLAIN_MIN and more).
    let jobs: Vec<NewJob> = (0..60)
        .map(|i| NewJob::new(Q, "work").priority(i % 3 - 1))
        .collect();
    let answers = env.broker.enqueue(jobs).await.unwrap();
    // Then a job with an id (the script) at priorities that have a list already and not.
    env.enqueue(prio("late0", 0)).await;
    env.enqueue(prio("late9", 9)).await;
    let mut expected = vec!["late9".to_owned()];
    for p in [1, 0, -1] {
        for (i, a) in answers.iter().enumerate() {
            if i as i32 % 3 - 1 == p {
                expected.push(a.id.clone());
            }
        }
        if p == 0 {
            expected.push("late0".into());
        }
    }
    assert_eq!(env.members(JobState::Pending).await, expected);
    assert_eq!(counts_pending(&env).await, 62);
    assert_eq!(claimed(&env, 100).await, expected);
}

async fn counts_pending(env: &Env) -> u64 {
    env.broker.counts(&env.keys).await.unwrap().states[&JobState::Pending]
}

#[tokio::test]
async fn a_job_taken_from_the_middle_of_its_list_leaves_the_rest_in_order() {
    // Each acts on a pending job; the answer of a repeated call (refused or not found) is
    // not what this test is about.
    type Act = for<'a> fn(&'a Env, &'static str) -> futures::future::BoxFuture<'a, ()>;
    let actions: [(&str, Option<JobState>, Act); 4] = [
        ("cancel", Some(JobState::Cancelled), |env, id| {
            Box::pin(async move {
                let _ = env.broker.cancel(&env.keys, &KEEP, id).await;
            })
        }),
        ("delete", None, |env, id| {
            Box::pin(async move {
                let _ = env.broker.delete(&env.keys, id).await;
            })
        }),
        ("kill", Some(JobState::Dead), |env, id| {
            Box::pin(async move {
                let _ = env.broker.kill(&env.keys, &KEEP, id).await;
            })
        }),
        ("reschedule", Some(JobState::Scheduled), |env, id| {
            Box::pin(async move {
                let _ = env.broker.reschedule(&env.keys, id, &Due::In(HOUR)).await;
            })
        }),
    ];
    for (name, state, act) in actions {
        let env = start().await;
        for (id, p) in [("a", 0), ("b", 0), ("c", 0), ("x", 1)] {
            env.enqueue(prio(id, p)).await;
        }
        act(&env, "b").await;
        assert_eq!(
            env.members(JobState::Pending).await,
            ["x", "a", "c"],
            "{name}"
        );
        match state {
            Some(state) => env.assert_state("b", state).await,
            None => env.assert_gone("b").await,
        }
        // The only job of its priority: the priority leaves the set with it.
        act(&env, "x").await;
        assert_eq!(bands(&env).await, [("0".into(), 0.0)], "{name}");
        assert_eq!(env.members(JobState::Pending).await, ["a", "c"], "{name}");
        // A second call finds the job out of pending and changes nothing there.
        act(&env, "b").await;
        assert_eq!(env.members(JobState::Pending).await, ["a", "c"], "{name}");
        assert_eq!(claimed(&env, 10).await, ["a", "c"], "{name}");
    }
}

#[tokio::test]
async fn a_job_rescheduled_to_now_goes_to_the_back_of_its_list() {
    let env = start().await;
    for id in ["a", "b", "c"] {
        env.enqueue(job(id)).await;
    }
    let was = env.broker.reschedule(&env.keys, "a", &Due::Now).await;
    assert_eq!(was.unwrap(), JobState::Pending);
    assert_eq!(env.members(JobState::Pending).await, ["b", "c", "a"]);
    env.assert_state("a", JobState::Pending).await;
}

/// One page of pending after `after`, `want` ids, no filter.
async fn page(env: &Env, after: Option<(&str, &str)>, want: usize) -> Page {
    let query = PageQuery {
        after,
        want,
        budget: want,
        time_field: "due",
        ..Default::default()
    };
    env.broker
        .page(&env.keys, JobState::Pending, &query)
        .await
        .unwrap()
}

fn cursor(page: &Page) -> Option<(&str, &str)> {
    page.next.as_ref().map(|(s, i)| (s.as_str(), i.as_str()))
}

#[tokio::test]
async fn a_page_of_pending_goes_on_behind_its_cursor() {
    let env = start().await;
    for (id, p) in [("a", 5), ("b", 5), ("c", 0), ("d", 0), ("e", 0), ("f", -1)] {
        env.enqueue(prio(id, p)).await;
    }
    let one = page(&env, None, 2).await;
    assert_eq!(one.ids, ["a", "b"]);
    assert_eq!(cursor(&one), Some(("5", "b")));
    let two = page(&env, cursor(&one), 2).await;
    assert_eq!(two.ids, ["c", "d"]);
    assert_eq!(cursor(&two), Some(("0", "d")));
    let three = page(&env, cursor(&two), 5).await;
    assert_eq!(three.ids, ["e", "f"]);
    assert_eq!(three.next, None, "a short page is the end");

    // Jobs claimed from the front meanwhile are simply gone, and so is the cursor's whole
    // priority here: the page goes on with the next one.
    assert_eq!(claimed(&env, 2).await, ["a", "b"]);
    assert_eq!(page(&env, cursor(&one), 2).await.ids, ["c", "d"]);
    // A job cancelled from the middle of its list, not the cursor's: nothing repeats.
    env.broker.cancel(&env.keys, &KEEP, "e").await.unwrap();
    assert_eq!(page(&env, Some(("0", "c")), 5).await.ids, ["d", "f"]);
    // The cursor's own job left its list: the page starts over at the front of that list
    // (the documented repeat).
    env.broker.cancel(&env.keys, &KEEP, "d").await.unwrap();
    assert_eq!(page(&env, Some(("0", "d")), 5).await.ids, ["c", "f"]);
    // A cursor below every priority there is: the end.
    let past = page(&env, Some(("-7", "zz")), 5).await;
    assert!(past.ids.is_empty() && past.next.is_none(), "{past:?}");
}

/// The pending index as a version before lists wrote it: the job ids in `pending`, scored
/// `(1000 - priority) * 2^42 + seq`, and the `seq` counter. The jobs are made the ordinary way
/// (their records are the same), then their place is rewritten.
async fn stage_old_layout(env: &Env, jobs: &[(&str, i32)]) {
    for &(id, p) in jobs {
        env.enqueue(prio(id, p)).await;
    }
    let lists = pending_lists(&mut env.conn.clone(), &env.keys).await;
    let mut pipe = redis::pipe();
    pipe.atomic().del(&env.keys.pending).ignore();
    for (band, _) in &lists {
        pipe.del(env.keys.pending_band(*band)).ignore();
    }
    for (seq, &(id, p)) in jobs.iter().enumerate() {
        let score = (1000 - i64::from(p)) * (1 << 42) + seq as i64 + 1;
        pipe.zadd(&env.keys.pending, id, score).ignore();
    }
    pipe.set(&env.keys.seq, jobs.len()).ignore();
    let () = pipe.query_async(&mut env.conn.clone()).await.unwrap();
}

async fn seq_exists(env: &Env) -> bool {
    env.conn.clone().exists(&env.keys.seq).await.unwrap()
}

#[tokio::test]
async fn a_queue_in_the_old_layout_moves_to_the_lists_on_its_first_claim() {
    let env = start().await;
    // Ids that read as numbers too: only a priority scored minus itself is a band.
    let jobs = [("a", 0), ("7", 2), ("c", 0), ("-1", -1), ("e", 2), ("0", 0)];
    stage_old_layout(&env, &jobs).await;
    // Read before the move: each id in the set is a job, in its old order.
    assert_eq!(counts_pending(&env).await, 6);
    assert_eq!(page(&env, None, 3).await.ids, ["7", "e", "a"]);

    assert_eq!(claimed(&env, 1).await, ["7"]);
    assert!(
        !seq_exists(&env).await,
        "the old counter goes with the move"
    );
    assert_eq!(
        env.members(JobState::Pending).await,
        ["e", "a", "c", "0", "-1"]
    );
    assert_eq!(counts_pending(&env).await, 5);
    for (id, _) in jobs {
        if id != "7" {
            env.assert_state(id, JobState::Pending).await;
        }
    }
    // New jobs queue behind the moved ones.
    env.enqueue(prio("new", 0)).await;
    assert_eq!(claimed(&env, 10).await, ["e", "a", "c", "0", "new", "-1"]);
}

#[tokio::test]
async fn old_ids_go_ahead_of_jobs_the_plain_transaction_added_before_the_move() {
    let env = start().await;
    stage_old_layout(&env, &[("old1", 0), ("old2", 1)]).await;
    // An older node's enqueue during a rolling upgrade, or this release's plain enqueue
    // before any script ran: lists beside a set that still holds ids.
    let jobs: Vec<NewJob> = (0..40).map(|_| NewJob::new(Q, "work")).collect();
    let fresh: Vec<String> = env
        .broker
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(counts_pending(&env).await, 42);

    let first = claimed(&env, 3).await;
    assert_eq!(first, ["old2", "old1", fresh[0].as_str()]);
    assert!(!seq_exists(&env).await);
    assert_eq!(env.members(JobState::Pending).await, fresh[1..]);
}

#[tokio::test]
async fn any_pending_write_moves_the_old_layout_and_purge_pops_the_lists() {
    let env = start().await;
    stage_old_layout(&env, &[("a", 0), ("b", 3)]).await;
    // Cancel is a pending write too: it finds `a` in its list after the move.
    env.broker.cancel(&env.keys, &KEEP, "a").await.unwrap();
    env.assert_state("a", JobState::Cancelled).await;
    assert!(!seq_exists(&env).await);
    assert_eq!(env.members(JobState::Pending).await, ["b"]);

    for (id, p) in [("c", 0), ("d", -2), ("e", 3)] {
        env.enqueue(prio(id, p)).await;
    }
    let purged = env
        .broker
        .purge_batch(&env.keys, JobState::Pending, 2)
        .await
        .unwrap();
    assert_eq!(purged, 2);
    for id in ["b", "e"] {
        env.assert_gone(id).await;
    }
    assert_eq!(env.members(JobState::Pending).await, ["c", "d"]);
    while env
        .broker
        .purge_batch(&env.keys, JobState::Pending, 1000)
        .await
        .unwrap()
        > 0
    {}
    assert!(bands(&env).await.is_empty());
    assert_eq!(counts_pending(&env).await, 0);
}

#[tokio::test]
async fn jobs_a_claim_passes_over_go_back_to_the_front_of_their_list_in_order() {
    let env = start().await;
    // g1..g3: the tasks of one cron tick (group t), at a priority of their own.
    for (id, p) in [("g1", 1), ("g2", 1), ("g3", 1), ("z", 0), ("y", 0)] {
        env.enqueue(prio(id, p)).await;
    }
    for id in ["g1", "g2", "g3"] {
        env.set_field(id, "group", "t").await;
    }
    let claim = |owner: &'static str, max: usize| {
        let env = &env;
        async move {
            let batch = env
                .broker
                .claim(&env.keys, owner, LEASE, max, HOUR)
                .await
                .unwrap();
            batch.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(claim("w1", 1).await, ["g1"]);
    // w1 holds a task of the tick: it passes over g2 and g3 (draining their list) and takes z.
    assert_eq!(claim("w1", 1).await, ["z"]);
    assert_eq!(env.members(JobState::Pending).await, ["g2", "g3", "y"]);
    assert_eq!(bands(&env).await.len(), 2, "priority 1 is back in the set");
    // w2 takes g2, then passes over g3 in turn; a third worker takes it.
    assert_eq!(claim("w2", 5).await, ["g2", "y"]);
    assert_eq!(env.members(JobState::Pending).await, ["g3"]);
    assert_eq!(claim("w3", 5).await, ["g3"]);
}
