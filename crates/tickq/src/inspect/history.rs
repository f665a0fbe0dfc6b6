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
        for queue in &queues {
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
