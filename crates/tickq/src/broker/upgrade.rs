//! Upgrade of a queue's jobs from layout 4 (a hash per job) to layout 5 (the payload apart,
//! `record.rs`), on first touch: before a process's first claim, recover or janitor pass of a
//! queue, and before the inspector reads it. `lua/upgrade.lua` moves each job; this walks the
//! queue's indexes in chunks (no single call holds Redis for long), then sets the queue's
//! marker (unless the queue held no job and nothing writes one now), after which a touch costs
//! one `EXISTS` per process and queue.

use super::Broker;
use super::keys::QueueKeys;
use super::scripts::SCRIPTS;
use crate::Result;
use redis::Value;

/// Ids one upgrade call looks at.
const CHUNK: usize = 1000;

/// The sorted-set indexes walked after the pending lists.
const INDEXES: [&str; 7] = [
    "scheduled",
    "retry",
    "active",
    "waiting",
    "completed",
    "dead",
    "cancelled",
];

impl Broker {
    /// Make sure the queue's jobs are in layout 5 (once per process and queue). Answers how
    /// many jobs were moved.
    pub(crate) async fn upgrade(&self, keys: &QueueKeys) -> Result<u64> {
        self.upgrade_queue(keys, false).await
    }

    /// [`upgrade`](Self::upgrade) before a write that creates jobs: an empty queue gets its
    /// marker too, so that the next process to touch it does not walk the jobs written now.
    pub(crate) async fn upgrade_to_write(&self, keys: &QueueKeys) -> Result<u64> {
        self.upgrade_queue(keys, true).await
    }

    async fn upgrade_queue(&self, keys: &QueueKeys, writing: bool) -> Result<u64> {
        if self.upgraded(&keys.name) {
            return Ok(0);
        }
        let bands = match self.upgrade_call(keys, "bands", 0).await?.split_first() {
            Some((Value::Int(-1), _)) => {
                self.mark_upgraded(&keys.name);
                return Ok(0);
            }
            Some((_, bands)) => bands
                .iter()
                .map(super::value::text)
                .collect::<Result<Vec<_>>>()?,
            None => return Err(crate::Error::corrupt("upgrade script answered nothing")),
        };
        let (mut moved, mut seen_any) = (0, false);
        let lists = bands.iter().map(|band| format!("pending:{band}"));
        for index in lists.chain(INDEXES.iter().map(|s| (*s).to_owned())) {
            let mut first = 0;
            loop {
                let reply = self.upgrade_call(keys, &index, first).await?;
                let seen = reply.first().map(super::value::int).transpose()?;
                let Some(seen) = seen.filter(|&n| n >= 0) else {
                    // Another process finished the queue meanwhile.
                    self.mark_upgraded(&keys.name);
                    return Ok(moved);
                };
                seen_any |= seen > 0;
                moved += reply
                    .get(1)
                    .map(super::value::int)
                    .transpose()?
                    .unwrap_or(0) as u64;
                if (seen as usize) < CHUNK {
                    break;
                }
                first += CHUNK;
            }
        }
        // An empty queue gets no marker unless jobs are written now: a look that finds
        // nothing writes nothing (the next process looks again, at no cost).
        if seen_any || writing {
            self.upgrade_call(keys, "", 0).await?;
        }
        self.mark_upgraded(&keys.name);
        Ok(moved)
    }

    async fn upgrade_call(&self, keys: &QueueKeys, what: &str, first: usize) -> Result<Vec<Value>> {
        Ok(SCRIPTS
            .upgrade
            .key(&keys.layout)
            .arg(&keys.job_prefix)
            .arg(what)
            .arg(first)
            .arg(CHUNK)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }
}
