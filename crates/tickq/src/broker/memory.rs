//! The memory budget: refuse new jobs before Redis is full, so that the jobs already accepted
//! can always be drained.
//!
//! Two guards, from the outside in:
//!
//! 1. **The high-water mark** (a fraction of `maxmemory`, 0.9 unless the client says otherwise):
//!    an enqueue is refused with [`ErrorKind::RedisFull`] while the last sample of Redis'
//!    `used_memory` is at or above it. Scripts cannot read `INFO`, and an `INFO memory` round
//!    trip per enqueue would double the cost of the hottest producer path, so the sample is
//!    shared by every clone of the broker and read again at most every [`SAMPLE_EVERY`] (one
//!    extra round trip per process per period, by whichever enqueue finds the sample stale;
//!    the others use the old one and never wait for it). An enqueue burst can therefore run
//!    past the mark for up to one period; the second guard stops it at `maxmemory`.
//! 2. **Redis' own refusal**: the enqueue script and transaction may grow memory, so Redis
//!    refuses them at `maxmemory` (`-OOM`), which becomes `RedisFull` too. The scripts that
//!    drain or shrink the queue (claim, ack, fail, renew, recover, requeue, cancel, delete,
//!    kill, janitor, purge, lock renew/release, node heartbeat, job progress) declare
//!    `#!lua flags=allow-oom`: Redis 7 runs
//!    them at `maxmemory`, so a full Redis never wedges the workers (without the flag, the first
//!    write of a claim or an ack is refused, and the accepted jobs never run).
//!
//! The janitor reads the same sample: above the mark it drops completed and cancelled jobs,
//! oldest first, whatever their retention, before anything else gives.

use super::Broker;
use super::value::text;
use crate::error::FULL_ADVICE;
use crate::{Error, ErrorKind, Result};
use redis::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How old a memory sample may be before an enqueue reads a new one.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The high-water mark unless the client sets one: 90% of `maxmemory`.
pub const DEFAULT_HIGH_WATER: f64 = 0.9;

/// Redis' memory use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemorySample {
    pub(crate) used: u64,
    /// `maxmemory`; 0 when Redis has no limit.
    pub(crate) max: u64,
}

impl MemorySample {
    /// Whether `used` is at or above `high_water` of `max` (never, without a limit).
    pub(crate) fn above(&self, high_water: f64) -> bool {
        self.max > 0 && self.used as f64 >= self.max as f64 * high_water
    }
}

/// The sample shared by every clone of one broker.
#[derive(Default)]
pub(crate) struct MemoryGauge {
    last: Mutex<Option<(Instant, MemorySample)>>,
    /// Set while one caller reads a new sample, so that concurrent callers do not all send
    /// `INFO` when the sample goes stale.
    reading: AtomicBool,
}

impl Broker {
    /// Redis' memory use, read now (one `INFO memory` round trip) and kept as the shared
    /// sample.
    pub(crate) async fn read_memory(&self) -> Result<MemorySample> {
        let info: Value = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn())
            .await?;
        let sample = parse_info(&info)?;
        *self.memory.last.lock().expect("memory sample poisoned") = Some((Instant::now(), sample));
        Ok(sample)
    }

    /// The shared sample if it is younger than `max_age`, else a new one. When another caller
    /// is reading already, the old sample is answered rather than waiting (None: no sample
    /// yet and someone else reads the first).
    pub(crate) async fn memory_sample(&self, max_age: Duration) -> Result<Option<MemorySample>> {
        let last = *self.memory.last.lock().expect("memory sample poisoned");
        if let Some((at, sample)) = last
            && at.elapsed() < max_age
        {
            return Ok(Some(sample));
        }
        if self.memory.reading.swap(true, Ordering::AcqRel) {
            return Ok(last.map(|(_, s)| s));
        }
        let read = self.read_memory().await;
        self.memory.reading.store(false, Ordering::Release);
        read.map(Some)
    }

    /// Refuse new jobs above the high-water mark (see the module docs).
    pub(crate) async fn check_room(&self) -> Result<()> {
        if self.high_water >= 1.0 {
            return Ok(());
        }
        let Some(sample) = self.memory_sample(SAMPLE_EVERY).await? else {
            return Ok(());
        };
        if sample.above(self.high_water) {
            return Err(Error::new(
                ErrorKind::RedisFull,
                format!(
                    "Redis is full: {} MiB used of maxmemory {} MiB, above the high-water mark \
                     of {:.0}%; {FULL_ADVICE}",
                    sample.used >> 20,
                    sample.max >> 20,
                    self.high_water * 100.0
                ),
            ));
        }
        Ok(())
    }

    /// Whether memory is tight: the sample (at most `max_age` old) is above the mark.
    pub(crate) async fn memory_tight(&self, max_age: Duration) -> Result<bool> {
        Ok(self
            .memory_sample(max_age)
            .await?
            .is_some_and(|s| s.above(self.high_water.min(1.0))))
    }
}

/// `used_memory` and `maxmemory` from an `INFO memory` reply. A Cluster answers one reply per
/// node; the fullest node counts, since a job's slot may live there.
fn parse_info(info: &Value) -> Result<MemorySample> {
    match info {
        Value::Map(nodes) => {
            let mut fullest: Option<MemorySample> = None;
            for (_, reply) in nodes {
                let s = parse_info(reply)?;
                let ratio = |s: &MemorySample| {
                    if s.max == 0 {
                        0.0
                    } else {
                        s.used as f64 / s.max as f64
                    }
                };
                if fullest.is_none_or(|f| ratio(&s) > ratio(&f)) {
                    fullest = Some(s);
                }
            }
            fullest.ok_or_else(|| Error::corrupt("INFO memory answered no node"))
        }
        Value::VerbatimString { text: body, .. } => parse_info_text(body),
        other => parse_info_text(&text(other)?),
    }
}

fn parse_info_text(body: &str) -> Result<MemorySample> {
    let field = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| Error::corrupt(format!("INFO memory has no {name} field")))
    };
    Ok(MemorySample {
        used: field("used_memory")?,
        max: field("maxmemory")?,
    })
}

/// Check a memory high-water mark (see [`Client::with_memory_high_water`]): a fraction of
/// `maxmemory` in (0, 1]. The error says what is expected.
///
/// [`Client::with_memory_high_water`]: crate::Client::with_memory_high_water
pub fn validate_high_water(fraction: f64) -> Result<()> {
    if fraction.is_finite() && fraction > 0.0 && fraction <= 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "the memory high-water mark must be a fraction of maxmemory in (0, 1], like 0.9 \
             (got {fraction}); 1 leaves only Redis' own refusal at maxmemory"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_memory_is_read_and_the_fullest_cluster_node_counts() {
        let one = "# Memory\r\nused_memory:1000\r\nused_memory_human:1000B\r\nmaxmemory:2000\r\n";
        assert_eq!(
            parse_info(&Value::BulkString(one.into())).unwrap(),
            MemorySample {
                used: 1000,
                max: 2000
            }
        );
        let other = "used_memory:1900\r\nmaxmemory:2000\r\n";
        let cluster = Value::Map(vec![
            (
                Value::SimpleString("a".into()),
                Value::BulkString(one.into()),
            ),
            (
                Value::SimpleString("b".into()),
                Value::BulkString(other.into()),
            ),
        ]);
        assert_eq!(parse_info(&cluster).unwrap().used, 1900);
        assert!(parse_info(&Value::BulkString("used_memory:1\r\n".into())).is_err());
    }

    #[test]
    fn the_mark_is_a_fraction_of_maxmemory_and_no_limit_is_never_full() {
        let s = MemorySample { used: 90, max: 100 };
        assert!(s.above(0.9));
        assert!(!s.above(0.91));
        assert!(
            !MemorySample {
                used: 1 << 40,
                max: 0
            }
            .above(0.1)
        );
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            assert_eq!(
                validate_high_water(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
        }
        validate_high_water(1.0).unwrap();
    }
}
