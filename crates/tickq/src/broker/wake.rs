//! The per-queue wake stream: scripts append to it (`wake` in prelude.lua) when work becomes
//! ready sooner than a sleeping worker expects; idle workers block on it.

use super::Broker;
use super::conn::Conn;
use super::keys::QueueKeys;
use crate::Result;
use std::time::Duration;

/// Entries one wake read takes at most: more than an approximately trimmed stream holds with
/// Redis' default node size (100). With a larger node size configured, a burst beyond this
/// costs one more read, never a lost wake-up.
const WAKE_READ_MAX: usize = 256;

impl Broker {
    /// Block on `keys`' wake stream, on `conn` (a [`Broker::blocking_connection`], never the
    /// shared one), for an entry newer than `last_seen` ("0-0" for any entry), for at most
    /// `block`. Answers the newest such entry's id, or `None` when the block ran out.
    ///
    /// A read takes nothing from the stream: every reader sees every entry, so a frozen reader
    /// cannot swallow another worker's wake-up. The stream is trimmed approximately (`wake` in
    /// prelude.lua), so it may hold a node's worth of entries newer than `last_seen`: one read
    /// takes them all (up to [`WAKE_READ_MAX`]) and answers the newest, so that a worker
    /// acts once on a burst of wake-ups, not once per entry.
    pub(crate) async fn wait_for_wake(
        &self,
        conn: &mut Conn,
        keys: &QueueKeys,
        last_seen: &str,
        block: Duration,
    ) -> Result<Option<String>> {
        // Reply: [[stream, [[id, [field, value]], ...]]], or nil when the block timed out.
        type Entries = Vec<(String, Vec<String>)>;
        let reply: Option<Vec<(String, Entries)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(WAKE_READ_MAX)
            .arg("BLOCK")
            // At least 1: BLOCK 0 would block forever.
            .arg((block.as_millis() as u64).max(1))
            .arg("STREAMS")
            .arg(&keys.wake)
            .arg(last_seen)
            .query_async(conn)
            .await?;
        Ok(reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .map(|(id, _)| id)
            .next_back())
    }
}
