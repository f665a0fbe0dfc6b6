//! Per-minute history kept in Redis: enqueued, processed, failed, retried, dead and run
//! times, per queue, for 8 days (the scripts write it; see `lua/prelude.lua`).

use super::Inspector;
use crate::job::validate_queue_name;
use crate::{Error, Result};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// The most points one answer holds; a longer range needs a larger step.
const MAX_POINTS: u64 = 2000;
/// Upper edges (ms) of the run-time buckets b1..b5; b6 is everything longer.
const RUN_EDGES: [u64; 5] = [10, 100, 1000, 10_000, 60_000];
/// How far back history goes.
const KEPT: Duration = crate::broker::keys::HISTORY_KEEP;

/// What [`Inspector::history`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// One queue; `None`: every queue, summed.
    pub queue: Option<String>,
    /// Start (rounded down to the minute). Default: an hour before `to`.
    pub from: Option<Timestamp>,
    /// End, exclusive. Default: now.
    pub to: Option<Timestamp>,
    /// Width of a point, a whole number of minutes. Default: one minute.
    pub step: Option<Duration>,
}

/// Counts of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPoint {
    /// The step's start.
    pub at: Timestamp,
    /// Jobs created (enqueued or fired by a schedule).
    pub enqueued: u64,
    /// Attempts that completed.
    pub processed: u64,
    /// Attempts that failed (each retry counts; the dead too).
    pub failed: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Jobs that went to dead (attempts used up, killed, lease lost on the last attempt).
    pub dead: u64,
    /// Attempts whose run time was recorded (completed and failed).
    pub run_count: u64,
    /// Their run times added up, ms.
    pub run_ms_sum: u64,
    /// The longest, ms.
    pub run_ms_max: u64,
    /// The median run time, ms, as the upper edge of its bucket (10, 100, 1000, 10000,
    /// 60000; `null` when there were no runs or it was over a minute).
    pub run_ms_p50: Option<u64>,
    /// The 95th percentile, the same way.
    pub run_ms_p95: Option<u64>,
}

/// History of one queue or all: `tickq history --json`, `GET /api/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct History {
    /// The queue; `None`: every queue, summed.
    pub queue: Option<String>,
    /// The first point's start.
    pub from: Timestamp,
    /// The end of the last point.
    pub to: Timestamp,
    /// Width of a point, seconds.
    pub step_s: u64,
    /// One point per step, oldest first, zeros included.
    pub points: Vec<HistoryPoint>,
}

/// A point's raw fields, added up over minutes and queues.
#[derive(Default)]
struct Sums {
    fields: HashMap<String, u64>,
    max: u64,
}

impl Sums {
    fn add(&mut self, raw: HashMap<String, u64>) {
        for (field, n) in raw {
            if field == "rm" {
                self.max = self.max.max(n);
            } else {
                *self.fields.entry(field).or_default() += n;
            }
        }
    }

    fn get(&self, field: &str) -> u64 {
        self.fields.get(field).copied().unwrap_or(0)
    }

    fn point(&self, at: Timestamp) -> HistoryPoint {
        let buckets: Vec<u64> = (1..=6).map(|i| self.get(&format!("b{i}"))).collect();
        let total: u64 = buckets.iter().sum();
        let quantile = |q: f64| {
            if total == 0 {
                return None;
            }
            let rank = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return RUN_EDGES.get(i).copied();
                }
            }
            None
        };
        HistoryPoint {
            at,
            enqueued: self.get("e"),
            processed: self.get("p"),
            failed: self.get("f"),
            retried: self.get("r"),
            dead: self.get("d"),
            run_count: self.get("rc"),
            run_ms_sum: self.get("rs"),
            run_ms_max: self.max,
            run_ms_p50: quantile(0.5),
            run_ms_p95: quantile(0.95),
        }
    }
}

impl Inspector {
    /// Per-step counts of one queue (or all queues, summed) over a time range. Minutes with
    /// no activity count zero; history older than 8 days is gone.
    pub async fn history(&self, query: &HistoryQuery) -> Result<History> {
        let step = query.step.unwrap_or(Duration::from_secs(60));
        let step_min = step.as_secs() / 60;
        if step_min == 0 || !step.as_secs().is_multiple_of(60) || step.subsec_nanos() != 0 {
            return Err(Error::invalid(
                "the history step must be a whole number of minutes (1m, 5m, 1h...)",
            ));
        }
        let now = Timestamp::from_millisecond(self.broker.now_ms().await?)
            .map_err(|e| Error::corrupt("Redis time").with_source(e))?;
        let to = query.to.unwrap_or(now);
        let from = query
            .from
            .unwrap_or_else(|| to - SignedDuration::from_secs(3600));
        if from >= to {
            return Err(Error::invalid(
                "the history range is empty: `from` must be before `to`",
            ));
        }
        let first = from.as_millisecond().div_euclid(60_000);
        let last = (to.as_millisecond() - 1).div_euclid(60_000);
        let points = ((last - first) as u64) / step_min + 1;
        if points > MAX_POINTS {
            return Err(Error::invalid(format!(
                "{points} points asked; at most {MAX_POINTS}: use a larger step or a shorter range"
            )));
        }
        let queues = match &query.queue {
            Some(q) => {
                validate_queue_name(q)?;
                vec![q.clone()]
            }
            None => self.queues().await?,
        };
        // Minutes before the kept window hold nothing: do not ask for them.
        let oldest = (now.as_millisecond() - KEPT.as_millis() as i64).div_euclid(60_000);
        let mut sums: Vec<Sums> = (0..points).map(|_| Sums::default()).collect();
        // A sharded queue's history is the sum of its shards'.
        let mut physical = Vec::new();
        for queue in &queues {
            let layout = self.broker.layout(queue).await?;
            physical.extend(layout.physical().map(str::to_owned));
        }
        for queue in &physical {
            let keys = self.broker.keys(queue);
            let minutes: Vec<i64> = (first.max(oldest)..=last).collect();
            for chunk in minutes.chunks(1000) {
                let names: Vec<String> = chunk.iter().map(|m| keys.history(m * 60_000)).collect();
                let raws = self.broker.hashes_of_numbers(&names).await?;
                for (minute, raw) in chunk.iter().zip(raws) {
                    let i = ((minute - first) as u64 / step_min) as usize;
                    sums[i].add(raw);
                }
            }
        }
        let at = |i: u64| {
            Timestamp::from_millisecond((first + (i * step_min) as i64) * 60_000)
                .expect("a minute in range")
        };
        Ok(History {
            queue: query.queue.clone(),
            from: at(0),
            to: at(points),
            step_s: step.as_secs(),
            points: sums
                .iter()
                .enumerate()
                .map(|(i, s)| s.point(at(i as u64)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickq_testkit::TestRedis;

    /// The most a queue's history takes in Redis, as docs/operations.md states it.
    const CEILING_PER_QUEUE: u64 = 3 * 1024 * 1024;

    /// Write one minute the way the scripts do, at any time: every field set, the expiry the
    /// minute's first write sets (8 days after it).
    fn write_minute(pipe: &mut redis::Pipeline, key: &str, minute_ms: i64, n: u64) {
        pipe.cmd("HSET").arg(key);
        for (field, value) in [
            ("e", n),
            ("p", n),
            ("f", n / 10),
            ("r", n / 20),
            ("d", n / 100),
            ("rc", n),
            ("rs", n * 25),
            ("rm", 900),
            ("b1", n / 2),
            ("b2", n / 4),
            ("b3", n / 8),
            ("b4", n / 16),
            ("b5", n / 32),
            ("b6", 1),
        ] {
            pipe.arg(field).arg(value);
        }
        pipe.ignore();
        pipe.cmd("PEXPIREAT")
            .arg(key)
            .arg(minute_ms + KEPT.as_millis() as i64)
            .ignore();
    }

    #[tokio::test]
    async fn a_week_of_busy_minutes_stays_under_the_ceiling_and_older_ones_expire() {
        let redis = TestRedis::start();
        let client = crate::Client::connect(&redis.url()).await.unwrap();
        client
            .enqueue(crate::NewJob::new("busy", "k"))
            .await
            .unwrap(); // registers the queue
        let inspector = client.inspector();
        let keys = inspector.broker.keys("busy");
        let now = inspector.broker.now_ms().await.unwrap();
        let this_minute = now.div_euclid(60_000) * 60_000;
        let mut conn = redis.conn().await;
        // Ten days of minutes, every one of them busy: the oldest two days must not stay.
        for day in 0..10i64 {
            let mut pipe = redis::pipe();
            for m in 0..1440i64 {
                let minute_ms = this_minute - (day * 1440 + m) * 60_000;
                write_minute(&mut pipe, &keys.history(minute_ms), minute_ms, 1000);
            }
            let () = pipe.query_async(&mut conn).await.unwrap();
        }
        let names: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", keys.history_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        let kept_minutes = KEPT.as_secs() / 60;
        assert!(
            names.len() as u64 <= kept_minutes + 1,
            "{} minutes kept",
            names.len()
        );
        assert!(
            names.len() as u64 >= kept_minutes - 1,
            "{} minutes kept",
            names.len()
        );
        let mut bytes = 0u64;
        for name in &names {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(name)
                .query_async(&mut conn)
                .await
                .unwrap();
            bytes += used.unwrap_or(0);
        }
        println!(
            "{} minutes of history take {bytes} bytes ({} per minute); ceiling {CEILING_PER_QUEUE}",
            names.len(),
            bytes / names.len() as u64
        );
        assert!(bytes <= CEILING_PER_QUEUE, "{bytes} bytes");

        // The last hour reads back exactly, summed per 10 minutes.
        let history = inspector
            .history(&HistoryQuery {
                queue: Some("busy".into()),
                from: Timestamp::from_millisecond(this_minute - 59 * 60_000).ok(),
                to: Timestamp::from_millisecond(this_minute + 60_000).ok(),
                step: Some(Duration::from_secs(600)),
            })
            .await
            .unwrap();
        assert_eq!(history.points.len(), 6);
        let total: u64 = history.points.iter().map(|p| p.processed).sum();
        // 60 minutes of 1000, plus the job enqueued above (not processed).
        assert_eq!(total, 60_000);
        assert_eq!(history.points[0].run_ms_max, 900);
        assert_eq!(history.points[0].run_ms_p50, Some(10));
        assert!(history.points.iter().all(|p| p.dead == 100));
    }

    #[tokio::test]
    async fn the_scripts_count_what_they_do() {
        let redis = TestRedis::start();
        let client = crate::Client::connect(&redis.url()).await.unwrap();
        let jobs = (0..7)
            .map(|i| crate::NewJob::new("q", "k").payload(i.into()))
            .collect();
        client.enqueue_bulk(jobs).await.unwrap();
        client
            .enqueue(crate::NewJob::new("q", "k").id("one"))
            .await
            .unwrap();
        let history = client
            .inspector()
            .history(&HistoryQuery {
                queue: Some("q".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let enqueued: u64 = history.points.iter().map(|p| p.enqueued).sum();
        assert_eq!(enqueued, 8);
        let all = client
            .inspector()
            .history(&HistoryQuery::default())
            .await
            .unwrap();
        assert_eq!(all.points.iter().map(|p| p.enqueued).sum::<u64>(), 8);
        let err = client
            .inspector()
            .history(&HistoryQuery {
                step: Some(Duration::from_secs(90)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.message().contains("whole number of minutes"), "{err}");
    }
}
