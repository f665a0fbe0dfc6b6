//! The node registry and the lock index: who is alive, which locks exist.

use super::Broker;
use super::keys::{LOCKS, NODES_INFO, NODES_SEEN};
use super::scripts::SCRIPTS;
use super::value::{int, text};
use crate::Result;
use redis::{AsyncCommands, Value};
use std::time::Duration;

/// A live node as the registry holds it: its record (JSON, as the node wrote it) and when it
/// expires (Redis ms).
#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    pub(crate) expires_ms: i64,
    pub(crate) json: String,
}

/// A lock as the index and its keys show it.
#[derive(Debug, Clone)]
pub(crate) struct LockEntry {
    pub(crate) name: String,
    pub(crate) fence: u64,
    /// Time left on the holder's lease; `None`: nobody holds it.
    pub(crate) ttl: Option<Duration>,
}

impl Broker {
    /// Record a running job's progress, if `fence` still holds it (see `lua/progress.lua`).
    pub(crate) async fn progress(
        &self,
        keys: &super::keys::QueueKeys,
        id: &str,
        fence: u64,
        progress: &crate::Progress,
    ) -> Result<bool> {
        let json = serde_json::to_string(progress)?;
        let recorded: i64 = SCRIPTS
            .progress
            .key(keys.record(id))
            .arg(&keys.job_prefix)
            .arg(id)
            .arg(fence)
            .arg(json)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(recorded == 1)
    }

    /// Record this node as alive for `ttl` (zero: remove it). Answers Redis time, ms.
    pub(crate) async fn node_beat(&self, id: &str, json: &str, ttl: Duration) -> Result<i64> {
        Ok(SCRIPTS
            .node_beat
            .key(NODES_INFO)
            .key(NODES_SEEN)
            .arg(id)
            .arg(json)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// The live nodes, and Redis time (ms).
    pub(crate) async fn nodes(&self) -> Result<(i64, Vec<NodeEntry>)> {
        let reply: Vec<Value> = SCRIPTS
            .node_list
            .key(NODES_INFO)
            .key(NODES_SEEN)
            .invoke_async(&mut self.conn())
            .await?;
        let now = reply.first().map(int).transpose()?.unwrap_or(0);
        let nodes = reply[1.min(reply.len())..]
            .chunks_exact(2)
            .map(|c| {
                Ok(NodeEntry {
                    expires_ms: int(&c[0])?,
                    json: text(&c[1])?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((now, nodes))
    }

    /// Note that lock `name` was taken (for listing); the score is this node's clock, used
    /// only to forget locks nobody took for a long time.
    pub(crate) async fn index_lock(&self, name: &str) -> Result<()> {
        let now = jiff::Timestamp::now().as_millisecond();
        let _: i64 = self.conn().zadd(LOCKS, name, now).await?;
        Ok(())
    }

    /// Every indexed lock with its last fence and, when held, the time left on its lease.
    /// Locks neither held nor taken for `forget_after` leave the index.
    pub(crate) async fn locks(&self, forget_after: Duration) -> Result<Vec<LockEntry>> {
        let mut conn = self.conn();
        let names: Vec<(String, i64)> = conn.zrange_withscores(LOCKS, 0, -1).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // One lock's keys live in their own slot: one small request each, pipelined by the
        // multiplexed connection rather than sent as one cross-slot pipeline.
        let reads = names.iter().map(|(name, _)| {
            let keys = super::keys::LockKeys::new(name);
            let mut conn = self.conn();
            async move {
                let ttl: i64 = conn.pttl(&keys.owner).await?;
                let fence: Option<u64> = conn.get(&keys.fence).await?;
                Ok::<_, crate::Error>((ttl, fence.unwrap_or(0)))
            }
        });
        let read = futures::future::try_join_all(reads).await?;
        let cutoff = jiff::Timestamp::now().as_millisecond() - forget_after.as_millis() as i64;
        let mut out = Vec::new();
        let mut forget = Vec::new();
        for ((name, taken), (ttl, fence)) in names.into_iter().zip(read) {
            let ttl = (ttl > 0).then(|| Duration::from_millis(ttl as u64));
            if ttl.is_none() && taken < cutoff {
                forget.push(name);
                continue;
            }
            out.push(LockEntry { name, fence, ttl });
        }
        if !forget.is_empty() {
            let _: i64 = conn.zrem(LOCKS, forget).await?;
        }
        Ok(out)
    }
}
