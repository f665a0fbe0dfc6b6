//! The live nodes: what each one is and runs now, from the registry the workers keep.

use super::Inspector;
use crate::Result;
use crate::job::ms_to_timestamp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A queue a node claims from, and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueWeight {
    /// The queue.
    pub queue: String,
    /// Its weight against the node's other queues.
    pub weight: u32,
}

/// A job a node is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunningJob {
    /// Its queue.
    pub queue: String,
    /// The job id.
    pub id: String,
    /// The fencing token of this run.
    pub fence: u64,
}

/// One live node: `tickq nodes --json`, `GET /api/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeView {
    /// The worker id its leases are held under (`name:random`).
    pub id: String,
    /// The node's name.
    pub name: String,
    /// The tickq version it runs.
    pub version: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queues it claims from.
    pub queues: Vec<QueueWeight>,
    /// Most jobs it runs at once.
    pub concurrency: usize,
    /// When its worker started (Redis time).
    pub started_at: Option<Timestamp>,
    /// Its latest heartbeat (Redis time).
    #[serde(default)]
    pub last_seen_at: Option<Timestamp>,
    /// When it leaves the list unless it beats again.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// How long a heartbeat keeps it listed, ms.
    pub ttl_ms: u64,
    /// The jobs it runs now.
    pub running: Vec<RunningJob>,
}

/// The live nodes, by id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeList {
    /// The nodes.
    pub nodes: Vec<NodeView>,
}

impl Inspector {
    /// The nodes whose heartbeat has not expired. A node that stops (killed, cut off from
    /// Redis) leaves the list when its heartbeat expires; one that shuts down cleanly leaves
    /// at once.
    pub async fn nodes(&self) -> Result<NodeList> {
        let (_, entries) = self.broker.nodes().await?;
        let mut nodes = Vec::new();
        for entry in entries {
            // A record this version cannot read (written by a newer node) is skipped rather
            // than failing the whole list.
            let Ok(mut node) = serde_json::from_str::<NodeView>(&entry.json) else {
                continue;
            };
            node.expires_at = ms_to_timestamp(entry.expires_ms);
            node.last_seen_at = ms_to_timestamp(entry.expires_ms - node.ttl_ms as i64);
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(NodeList { nodes })
    }
}
