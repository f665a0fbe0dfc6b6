//! Following a Sentinel failover as it happens, not when the old primary finally breaks.
//!
//! Without this, a connection follows a failover only when a request fails on the old primary.
//! But Sentinel demotes the old primary some 10 s after it promotes the replica, and until then
//! the old primary accepts every write: acks written there vanish with it, so jobs run twice.
//! So each Sentinel connection keeps a pub/sub connection to every sentinel and listens for:
//!
//! - `+failover-state-send-slaveof-noone` (the leading sentinel is about to promote a replica
//!   of our master): from here on, writes to the old primary may be lost, so new requests
//!   *wait* (at most [`HOLD_MAX`]) instead of going there;
//! - `+switch-master` (the sentinels name the new primary): ask the sentinels, connect to the
//!   primary they name, check with `ROLE` that it is one (`SentinelTarget::resolve`), swap the
//!   connection in and let the waiting requests go, now to the new primary.
//!
//! Requests already sent when the hold starts finish on the old primary: only those (the jobs
//! in flight at the switch) can be lost. When the pub/sub connection to a sentinel breaks, it is
//! opened again and the master asked for anew, since an announcement may have been missed.
//!
//! This is the one task the Redis layer spawns: it belongs to the connection like the
//! connection manager's own reconnect task, and it stops when the last clone of the connection
//! is dropped.

use super::{SentinelConn, SentinelShared};
use futures::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest requests wait for the sentinels to name a new primary once a promotion has
/// begun; a forced failover names it within about a second. Past this (the failover was
/// aborted, or the announcement missed), requests go on and the master is asked for again.
pub(super) const HOLD_MAX: Duration = Duration::from_secs(3);

/// Pause between attempts to (re)open a sentinel's pub/sub connection.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

const SWITCH: &str = "+switch-master";
const PROMOTING: &str = "+failover-state-send-slaveof-noone";

/// What a sentinel announcement means for the master named `master`.
#[derive(Debug, PartialEq)]
pub(super) enum Event {
    /// A replica is being promoted: stop sending requests to the old primary.
    Promoting,
    /// The sentinels name a new primary.
    Switched,
}

/// Parses a sentinel pub/sub message; `None` when it is about another master or another event.
pub(super) fn event(channel: &str, payload: &str, master: &str) -> Option<Event> {
    match channel {
        // "<master> <old ip> <old port> <new ip> <new port>"
        SWITCH => (payload.split(' ').next() == Some(master)).then_some(Event::Switched),
        // "slave <ip>:<port> <ip> <port> @ <master> <master ip> <master port>"
        PROMOTING => {
            let (_, about) = payload.split_once(" @ ")?;
            (about.split(' ').next() == Some(master)).then_some(Event::Promoting)
        }
        _ => None,
    }
}

/// Starts one listener per sentinel for `shared`; they stop when `stop` is cancelled (the
/// connection's last clone is dropped).
pub(super) fn spawn(shared: &Arc<SentinelShared>, stop: CancellationToken) {
    for (host, port) in shared.target.sentinels.clone() {
        let weak = Arc::downgrade(shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = listen(weak, host, port) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn listen(shared: Weak<SentinelShared>, host: String, port: u16) {
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(RESUBSCRIBE_EVERY).await;
        }
        let Some(master) = shared.upgrade().map(|s| s.target.master.clone()) else {
            return;
        };
        let Ok(client) = redis::Client::open(format!("redis://{host}:{port}")) else {
            return;
        };
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(e) => {
                tracing::debug!(sentinel = %format!("{host}:{port}"), error = %e, "cannot listen to this sentinel for failovers");
                first = false;
                continue;
            }
        };
        if pubsub.subscribe(&[SWITCH, PROMOTING]).await.is_err() {
            first = false;
            continue;
        }
        if !first {
            // An announcement may have come while nobody listened.
            let Some(conn) = shared.upgrade().map(SentinelConn) else {
                return;
            };
            conn.refresh("listening to the sentinels again").await;
        }
        first = false;
        let mut messages = pubsub.on_message();
        let mut hold_until: Option<Instant> = None;
        loop {
            let next = async {
                match hold_until {
                    Some(until) => tokio::time::timeout_at(until, messages.next()).await,
                    None => Ok(messages.next().await),
                }
            };
            let message = match next.await {
                Ok(Some(message)) => message,
                // The sentinel went away: listen again (to it or, later, to it restarted).
                Ok(None) => break,
                Err(_) => {
                    // Promoting, but no new primary named in time: let requests go on and ask.
                    hold_until = None;
                    let Some(conn) = shared.upgrade().map(SentinelConn) else {
                        return;
                    };
                    conn.release();
                    conn.refresh("a promotion was announced but no new primary named")
                        .await;
                    continue;
                }
            };
            let payload: String = message.get_payload().unwrap_or_default();
            let Some(event) = event(message.get_channel_name(), &payload, &master) else {
                continue;
            };
            let Some(conn) = shared.upgrade().map(SentinelConn) else {
                return;
            };
            match event {
                Event::Promoting => {
                    let until = Instant::now() + HOLD_MAX;
                    hold_until = Some(until);
                    conn.hold(until);
                    tracing::info!(master = %master, "the sentinels are promoting a replica: holding Redis requests until they name the new primary");
                }
                Event::Switched => {
                    hold_until = None;
                    conn.refresh("the sentinels announced +switch-master").await;
                    conn.release();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_about_our_master_are_recognised() {
        let m = "mymaster";
        assert_eq!(
            event(SWITCH, "mymaster 127.0.0.1 6380 127.0.0.1 6381", m),
            Some(Event::Switched)
        );
        assert_eq!(
            event(SWITCH, "other 127.0.0.1 6380 127.0.0.1 6381", m),
            None
        );
        let promoting = "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6380";
        assert_eq!(event(PROMOTING, promoting, m), Some(Event::Promoting));
        assert_eq!(
            event(PROMOTING, &promoting.replace("mymaster", "mymaster2"), m),
            None
        );
        assert_eq!(event(PROMOTING, "garbage", m), None);
        assert_eq!(event("+sdown", "master mymaster 127.0.0.1 6380", m), None);
    }
}
