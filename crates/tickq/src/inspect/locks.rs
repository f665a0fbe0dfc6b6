//! The locks: which are held now, by which fence, until when.

use super::Inspector;
use crate::Result;
use jiff::Timestamp;
use serde::Serialize;
use std::time::Duration;

/// How long a lock that nobody holds or takes stays listed.
const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// One lock: `tickq lock ls --json`, `GET /api/locks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockView {
    /// The lock's name.
    pub name: String,
    /// Whether someone holds it now.
    pub held: bool,
    /// The latest fence issued: the holder's, while it is held.
    pub fence: u64,
    /// When the holder's lease runs out unless renewed (this node's clock plus Redis' TTL).
    pub expires_at: Option<Timestamp>,
    /// Time left on the holder's lease, ms.
    pub ttl_ms: Option<u64>,
}

/// The locks taken in the last week, held ones first, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockList {
    /// The locks.
    pub locks: Vec<LockView>,
}

impl Inspector {
    /// Locks held now, and the ones taken in the last 7 days that are free.
    pub async fn locks(&self) -> Result<LockList> {
        let now = Timestamp::now();
        let mut locks: Vec<LockView> = self
            .broker
            .locks(FORGET_AFTER)
            .await?
            .into_iter()
            .map(|l| LockView {
                held: l.ttl.is_some(),
                expires_at: l.ttl.and_then(|ttl| now.checked_add(ttl).ok()),
                ttl_ms: l.ttl.map(|t| t.as_millis() as u64),
                name: l.name,
                fence: l.fence,
            })
            .collect();
        locks.sort_by(|a, b| b.held.cmp(&a.held).then_with(|| a.name.cmp(&b.name)));
        Ok(LockList { locks })
    }
}
