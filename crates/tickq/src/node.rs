//! The node model: what a worker records about itself in the node registry (written by the
//! worker's registrar, read by the inspector).

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
