//! The Redis side of sharded queues (crate::shard has the model): the shard count of a queue,
//! read once per process from the global hash `tickq:shards`, and declared with `HSETNX`.

use super::Broker;
use super::keys::SHARDS;
use crate::shard::{Layout, validate_count};
use crate::{Error, ErrorKind, Result};
use redis::AsyncCommands;

impl Broker {
    /// The queue's shard count as Redis holds it now (1: not sharded).
    pub(crate) async fn shard_count_now(&self, queue: &str) -> Result<u32> {
        let count: Option<u32> = self.conn().hget(SHARDS, queue).await?;
        let count = count.unwrap_or(1);
        self.shards.remember(queue, count);
        Ok(count)
    }

    /// The queue's shard count, read from Redis once per process. A count is fixed once
    /// declared; "not sharded" read before a declaration only sends jobs to the base queue,
    /// which the workers of a sharded queue drain too (see the module docs).
    pub(crate) async fn shard_count(&self, queue: &str) -> Result<u32> {
        match self.shards.cached(queue) {
            Some(count) => Ok(count),
            None => self.shard_count_now(queue).await,
        }
    }

    /// The queue's physical queues (see [`Layout`]).
    pub(crate) async fn layout(&self, queue: &str) -> Result<Layout> {
        Ok(Layout::new(queue, self.shard_count(queue).await?))
    }

    /// Fix the queue's shard count at `count`, or check that it is: refused with
    /// [`ErrorKind::Conflict`] when Redis holds another count. `count` 1 declares nothing and
    /// only checks that the queue is not sharded.
    pub(crate) async fn declare_shards(&self, queue: &str, count: u32) -> Result<()> {
        crate::job::validate_queue_name(queue)?;
        validate_count(queue, count)?;
        if count > 1 {
            let _: bool = self.conn().hset_nx(SHARDS, queue, count).await?;
        }
        let held = self.shard_count_now(queue).await?;
        if held != count {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "queue {queue} has {held} shard(s) in Redis, not {count}: the shard count of \
                     a queue cannot change (the jobs of the shards past a smaller count would be \
                     stranded); configure shards = {held}, or use a new queue name"
                ),
            ));
        }
        // A declared sharded queue is listed before its first job; checking that a queue is
        // not sharded lists nothing (a worker's queue appears with its first job, as before).
        if count > 1 {
            self.register_queue(queue).await?;
        }
        Ok(())
    }

    /// The shard a new job goes to (of `count` > 1): see [`ShardCache::pick`].
    pub(crate) fn pick_shard(&self, job: &crate::NewJob, count: u32) -> u32 {
        self.shards.pick(job, count)
    }
}
