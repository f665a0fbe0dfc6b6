//! The Lua scripts, one per state transition (`lua/*.lua`), each prefixed with `lua/prelude.lua`.
//!
//! Scripts are sent with EVALSHA; `Script::invoke_async` loads a script again when Redis
//! answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH).

use redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $name, ".lua"))
        ))
    };
}

pub(crate) struct Scripts {
    pub(crate) enqueue: Script,
    pub(crate) claim: Script,
    pub(crate) ack: Script,
    pub(crate) fail: Script,
    pub(crate) renew: Script,
    pub(crate) recover: Script,
    pub(crate) requeue: Script,
    pub(crate) cancel: Script,
    pub(crate) delete: Script,
    pub(crate) retry: Script,
    pub(crate) kill: Script,
    pub(crate) reschedule: Script,
    pub(crate) janitor: Script,
    pub(crate) schedule_upsert: Script,
    pub(crate) fire: Script,
    pub(crate) schedule_pause: Script,
    pub(crate) queue_pause: Script,
    pub(crate) queue_purge: Script,
    pub(crate) lock_acquire: Script,
    pub(crate) lock_renew: Script,
    pub(crate) lock_release: Script,
    pub(crate) lock_fenced_set: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: script!("enqueue"),
    claim: script!("claim"),
    ack: script!("ack"),
    fail: script!("fail"),
    renew: script!("renew"),
    recover: script!("recover"),
    requeue: script!("requeue"),
    cancel: script!("cancel"),
    delete: script!("delete"),
    retry: script!("retry"),
    kill: script!("kill"),
    reschedule: script!("reschedule"),
    janitor: script!("janitor"),
    schedule_upsert: script!("schedule_upsert"),
    fire: script!("fire"),
    schedule_pause: script!("schedule_pause"),
    queue_pause: script!("queue_pause"),
    queue_purge: script!("queue_purge"),
    lock_acquire: script!("lock_acquire"),
    lock_renew: script!("lock_renew"),
    lock_release: script!("lock_release"),
    lock_fenced_set: script!("lock_fenced_set"),
});

impl Scripts {
    pub(crate) fn all(&self) -> [&Script; 22] {
        [
            &self.enqueue,
            &self.claim,
            &self.ack,
            &self.fail,
            &self.renew,
            &self.recover,
            &self.requeue,
            &self.cancel,
            &self.delete,
            &self.retry,
            &self.kill,
            &self.reschedule,
            &self.janitor,
            &self.schedule_upsert,
            &self.fire,
            &self.schedule_pause,
            &self.queue_pause,
            &self.queue_purge,
            &self.lock_acquire,
            &self.lock_renew,
            &self.lock_release,
            &self.lock_fenced_set,
        ]
    }
}
