//! `GET /api/events`: job changes and counts as Server-Sent Events.
//!
//! One hub per server reads Redis for all of its subscribers, and only while one is connected:
//! a single pub/sub subscription, and a stats read at most once a second when something
//! changed. Changes are coalesced into at most four batches a second, the newest
//! [`BATCH_MAX`] named, so a queue doing 50,000 jobs/s costs a browser four small messages a
//! second.

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickq::{Client, Event, JobChange};
use tokio::sync::broadcast;

/// The least time between two batches of changes.
const TICK: Duration = Duration::from_millis(250);
/// How often counts go out, at most (only when something changed).
const COUNTS_EVERY: Duration = Duration::from_secs(1);
/// Most changes one batch names; the rest are counted.
pub(crate) const BATCH_MAX: usize = 200;

/// One change as a batch names it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct SeenChange {
    queue: String,
    id: String,
    /// The new state, `deleted`, or `progress`.
    state: String,
    /// When this server saw it.
    #[schema(value_type = String, format = DateTime)]
    at: jiff::Timestamp,
}

/// The data of an `event: jobs`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct JobsBatch {
    events: Vec<SeenChange>,
    /// Changes in this period not named.
    dropped: u64,
}

/// A rendered SSE message, shared by every subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    name: &'static str,
    data: Arc<str>,
}

/// The pump that reads Redis while anyone listens.
pub(crate) struct Hub {
    client: Client,
    running: Mutex<Option<broadcast::Sender<Message>>>,
}

impl Hub {
    pub(crate) fn new(client: Client) -> Arc<Hub> {
        Arc::new(Hub {
            client,
            running: Mutex::new(None),
        })
    }

    /// A receiver of every message from now on; starts the pump if nobody listened.
    fn subscribe(self: &Arc<Hub>) -> broadcast::Receiver<Message> {
        let mut running = self.running.lock().expect("hub lock poisoned");
        if let Some(tx) = running.as_ref() {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(64);
        *running = Some(tx.clone());
        tokio::spawn(pump(self.clone(), tx));
        rx
    }

    /// The SSE response for one subscriber: the counts now, then the shared stream.
    pub(crate) async fn stream(
        self: &Arc<Hub>,
    ) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>> + use<>> {
        let rx = self.subscribe();
        let first = counts(&self.client).await;
        let stream = futures::stream::unfold((first, rx), |(first, mut rx)| async move {
            if let Some(msg) = first {
                return Some((Ok(to_sse(&msg)), (None, rx)));
            }
            let msg = match rx.recv().await {
                Ok(msg) => msg,
                // A slow reader missed batches: tell it to re-read, like after a gap.
                Err(broadcast::error::RecvError::Lagged(_)) => Message {
                    name: "gap",
                    data: "{}".into(),
                },
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(to_sse(&msg)), (None, rx)))
        });
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }
}

fn to_sse(msg: &Message) -> SseEvent {
    SseEvent::default().event(msg.name).data(&*msg.data)
}

/// The `counts` message now; `None` if Redis could not say.
async fn counts(client: &Client) -> Option<Message> {
    match client.inspector().stats().await {
        Ok(stats) => serde_json::to_string(&stats).ok().map(|data| Message {
            name: "counts",
            data: data.into(),
        }),
        Err(e) => {
            tracing::debug!(error = %e, "events: reading counts failed");
            None
        }
    }
}

/// Read changes from Redis and send coalesced batches until nobody listens.
async fn pump(hub: Arc<Hub>, tx: broadcast::Sender<Message>) {
    let mut events = loop {
        match hub.client.events().await {
            Ok(events) => break Some(events),
            Err(e) => {
                tracing::warn!(error = %e, "events: cannot subscribe; retrying");
                if !still_listened(&hub, &tx) {
                    break None;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let Some(events) = events.as_mut() else {
        return;
    };
    let mut batch: VecDeque<SeenChange> = VecDeque::new();
    let mut dropped = 0u64;
    let mut changed_since_counts = false;
    let mut last_counts = tokio::time::Instant::now();
    // A batch goes out at once when none went out for TICK (an idle system shows a change
    // within milliseconds), otherwise TICK after the last one (a busy one sends four a second).
    let mut last_batch = tokio::time::Instant::now() - TICK;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send_batch = |batch: &mut VecDeque<SeenChange>, dropped: &mut u64| {
        let data = JobsBatch {
            events: batch.drain(..).collect(),
            dropped: std::mem::take(dropped),
        };
        if let Ok(data) = serde_json::to_string(&data) {
            let _ = tx.send(Message {
                name: "jobs",
                data: data.into(),
            });
        }
    };
    loop {
        let pending = !batch.is_empty() || dropped > 0;
        let flush_at = last_batch + TICK;
        tokio::select! {
            event = events.next() => match event {
                Some(Event::Changes { changes, left_out }) => {
                    let at = jiff::Timestamp::now();
                    // Only the newest BATCH_MAX of a period are named: skip the rest unread.
                    let skip = changes.len().saturating_sub(BATCH_MAX);
                    dropped += left_out + skip as u64;
                    for JobChange { queue, id, state } in changes.into_iter().skip(skip) {
                        if batch.len() == BATCH_MAX {
                            batch.pop_front();
                            dropped += 1;
                        }
                        batch.push_back(SeenChange { queue, id, state, at });
                    }
                    changed_since_counts = true;
                    if last_batch.elapsed() >= TICK {
                        send_batch(&mut batch, &mut dropped);
                        last_batch = tokio::time::Instant::now();
                    }
                }
                Some(Event::Gap) => {
                    let _ = tx.send(Message { name: "gap", data: "{}".into() });
                    changed_since_counts = true;
                }
                None => return,
            },
            _ = tokio::time::sleep_until(flush_at), if pending => {
                send_batch(&mut batch, &mut dropped);
                last_batch = tokio::time::Instant::now();
            }
            _ = tick.tick() => {
                if !still_listened(&hub, &tx) {
                    return;
                }
                if changed_since_counts && last_counts.elapsed() >= COUNTS_EVERY {
                    changed_since_counts = false;
                    last_counts = tokio::time::Instant::now();
                    if let Some(msg) = counts(&hub.client).await {
                        let _ = tx.send(msg);
                    }
                }
            }
        }
    }
}

/// Whether anyone still listens; if not, the pump stops (under the hub's lock, so a new
/// subscriber either joins this pump before the check or starts a new one after it).
fn still_listened(hub: &Hub, tx: &broadcast::Sender<Message>) -> bool {
    let mut running = hub.running.lock().expect("hub lock poisoned");
    if tx.receiver_count() > 0 {
        return true;
    }
    *running = None;
    false
}
