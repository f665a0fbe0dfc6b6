//! Reading and writing a queue's limits (the hash the claim script reads).

use super::Broker;
use super::keys::QueueKeys;
use crate::Result;
use crate::limits::{QueueLimits, Rate};
use std::time::Duration;

impl Broker {
    /// Replace the queue's limits, atomically, and wake an idle worker (a raised limit may let
    /// waiting jobs start).
    pub(crate) async fn set_limits(&self, keys: &QueueKeys, limits: &QueueLimits) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(&keys.limits).ignore();
        if let Some(n) = limits.concurrency {
            pipe.hset(&keys.limits, "concurrency", n).ignore();
        }
        if let Some(rate) = limits.rate {
            pipe.hset_multiple(
                &keys.limits,
                &[
                    ("rate", u64::from(rate.jobs)),
                    ("per", rate.per.as_millis() as u64),
                ],
            )
            .ignore();
        }
        pipe.add_command(super::wake_command(keys)).ignore();
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    pub(crate) async fn limits(&self, keys: &QueueKeys) -> Result<QueueLimits> {
        let fields: (Option<u32>, Option<u32>, Option<u64>) = redis::cmd("HMGET")
            .arg(&keys.limits)
            .arg("concurrency")
            .arg("rate")
            .arg("per")
            .query_async(&mut self.conn())
            .await?;
        Ok(limits_from(fields))
    }
}

/// The limits from the hash fields (concurrency, rate, per); unreadable fields count as unset.
pub(crate) fn limits_from(fields: (Option<u32>, Option<u32>, Option<u64>)) -> QueueLimits {
    let (concurrency, jobs, per) = fields;
    QueueLimits {
        concurrency,
        rate: match (jobs, per) {
            (Some(jobs), Some(per)) => Some(Rate::new(jobs, Duration::from_millis(per))),
            _ => None,
        },
    }
}
