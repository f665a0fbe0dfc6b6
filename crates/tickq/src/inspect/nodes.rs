//! The live nodes: what each one is and runs now, from the registry the workers keep.

use super::Inspector;
use crate::Result;
use crate::job::ms_to_timestamp;
use crate::node::NodeView;
use serde::Serialize;

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
