//! Job state changes as the scripts publish them on each queue's channel
//! ([`QueueKeys::events`](super::keys::QueueKeys::events)): one message per script call, the queue's name, then one `state id` line per change (at most
//! [`EVENTS_MAX`]), then `+ N` for the changes left out. Pub/sub only lets watchers see changes
//! early; nothing depends on a message arriving (a watcher that needs certainty reads Redis).

use super::Broker;
use crate::Result;
use futures::StreamExt as _;

/// A live subscription to the events channel. Its stream ends when the connection drops
/// (messages sent meanwhile are lost; the caller reconnects and re-reads what it shows).
pub(crate) struct Subscription {
    stream: redis::aio::PubSubStream,
}

impl Subscription {
    /// The next message; `None` when the connection dropped. Messages that are not ours are
    /// skipped.
    pub(crate) async fn next(&mut self) -> Option<Message> {
        loop {
            let msg = self.stream.next().await?;
            if msg.get_channel_name().ends_with("}:events")
                && let Ok(text) = msg.get_payload::<String>()
                && let Some(message) = parse(&text)
            {
                return Some(message);
            }
        }
    }
}

impl Broker {
    /// Subscribe to every queue's events channel.
    pub(crate) async fn subscribe_events(&self) -> Result<Subscription> {
        let mut pubsub = self.target.pubsub().await?;
        pubsub.psubscribe(super::keys::EVENTS_PATTERN).await?;
        Ok(Subscription {
            stream: pubsub.into_on_message(),
        })
    }
}

/// Most changes one message names (`EVENTS_MAX` in `lua/prelude.lua`).
pub(crate) const EVENTS_MAX: usize = 100;

/// One job's change, as a message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The new state (`pending`, `active`, `completed`, ...), `deleted` or `progress`.
    pub(crate) state: String,
    pub(crate) id: String,
}

/// One message: a queue's changes, and how many more there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) queue: String,
    pub(crate) changes: Vec<Change>,
    pub(crate) left_out: u64,
}

/// The message for `changes` (state, id) of `queue`, as the scripts write it.
pub(crate) fn message<'a>(
    queue: &str,
    changes: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut out = String::from(queue);
    let mut left_out = 0u64;
    for (n, (state, id)) in changes.enumerate() {
        if n < EVENTS_MAX {
            out.push('\n');
            out.push_str(state);
            out.push(' ');
            out.push_str(id);
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        out.push_str(&format!("\n+ {left_out}"));
    }
    out
}

/// Read a message; `None` when it is not one of ours.
pub(crate) fn parse(text: &str) -> Option<Message> {
    let mut lines = text.split('\n');
    // A shard's changes are its queue's (`hot#3` -> `hot`, see shard.rs).
    let queue = lines
        .next()
        .filter(|q| !q.is_empty())
        .map(crate::shard::logical)?
        .to_owned();
    let mut changes = Vec::new();
    let mut left_out = 0;
    for line in lines {
        let (state, rest) = line.split_once(' ')?;
        if state == "+" {
            left_out = rest.parse().ok()?;
        } else {
            changes.push(Change {
                state: state.to_owned(),
                id: rest.to_owned(),
            });
        }
    }
    Some(Message {
        queue,
        changes,
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let ids: Vec<String> = (0..150).map(|i| format!("job-{i}")).collect();
        let text = message("emails", ids.iter().map(|id| ("pending", id.as_str())));
        let m = parse(&text).unwrap();
        assert_eq!(m.queue, "emails");
        assert_eq!(m.changes.len(), EVENTS_MAX);
        assert_eq!(
            m.changes[3],
            Change {
                state: "pending".into(),
                id: "job-3".into()
            }
        );
        assert_eq!(m.left_out, 50);
        assert_eq!(
            parse("q"),
            Some(Message {
                queue: "q".into(),
                changes: vec![],
                left_out: 0
            })
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("q\nnospace"), None);
    }
}
