//! The Lua scripts, one per state transition (`lua/*.lua`), each prefixed with `lua/prelude.lua`.
//!
//! Scripts are sent with EVALSHA; `Script::invoke_async` loads a script again when Redis
//! answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH).

use redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($name:literal) => {
        Script::new(&disable_for_test(
            $name,
            assemble(include_str!(concat!("lua/", $name, ".lua"))),
        ))
    };
}

/// TEST ONLY, not part of the interface, and read by debug builds only (a release build
/// ignores it): a comma-separated list of protections to switch off, so that the fault
/// harness can show its checker catching the broken guarantee. `ack-fence`: ack completes an
/// active job whatever the fence (a zombie's late ack is applied). `recovery`: expired leases
/// are never taken back (a dead worker's jobs stay active).
pub(crate) const DISABLE_ENV: &str = "TICKQ_TEST_DISABLE";

fn disable_for_test(name: &str, source: String) -> String {
    if !cfg!(debug_assertions) {
        return source;
    }
    let Ok(list) = std::env::var(DISABLE_ENV) else {
        return source;
    };
    let patch = |source: String, from: &str, to: &str| {
        assert!(
            source.contains(from),
            "{DISABLE_ENV}: {name}.lua no longer has {from:?}"
        );
        tracing::warn!("{DISABLE_ENV}: {name}.lua runs without a protection, for a fault test");
        source.replacen(from, to, 1)
    };
    let mut source = source;
    for what in list.split(',').map(str::trim) {
        source = match (what, name) {
            ("ack-fence", "ack") => patch(
                source,
                "if f[1] == 'active' and f[2] == ARGV[i + 1] then",
                "if f[1] == 'active' then",
            ),
            ("recovery", "recover") => patch(
                source,
                "local prefix = ARGV[1]\n",
                "if true then return {0, 0, 0} end\nlocal prefix = ARGV[1]\n",
            ),
            _ => source,
        };
    }
    source
}

/// The prelude, then the script. A script's first line may be a Redis 7 shebang
/// (`#!lua flags=allow-oom` on the scripts that must run when Redis is full, see
/// `memory.rs`), which Redis reads only as the very first line: it goes before the prelude.
fn assemble(body: &str) -> String {
    let prelude = include_str!("lua/prelude.lua");
    match body.strip_prefix("#!") {
        Some(rest) => {
            let (shebang, rest) = rest.split_once('\n').unwrap_or((rest, ""));
            format!("#!{shebang}\n{prelude}\n{rest}")
        }
        None => format!("{prelude}\n{body}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts that drain or shrink the queue run at maxmemory; those that add work are
    /// refused there, so that Redis' own OOM refusal backs up the high-water mark.
    #[test]
    fn draining_scripts_run_at_maxmemory_and_adding_ones_do_not() {
        let allow_oom = [
            ("claim", include_str!("lua/claim.lua")),
            ("ack", include_str!("lua/ack.lua")),
            ("fail", include_str!("lua/fail.lua")),
            ("renew", include_str!("lua/renew.lua")),
            ("recover", include_str!("lua/recover.lua")),
            ("requeue", include_str!("lua/requeue.lua")),
            ("cancel", include_str!("lua/cancel.lua")),
            ("delete", include_str!("lua/delete.lua")),
            ("kill", include_str!("lua/kill.lua")),
            ("janitor", include_str!("lua/janitor.lua")),
            ("queue_purge", include_str!("lua/queue_purge.lua")),
            ("queue_pause", include_str!("lua/queue_pause.lua")),
            ("lock_renew", include_str!("lua/lock_renew.lua")),
            ("lock_release", include_str!("lua/lock_release.lua")),
        ];
        for (name, body) in allow_oom {
            assert!(
                body.starts_with("#!lua flags=allow-oom\n"),
                "{name}.lua must run when Redis is full"
            );
            assert!(assemble(body).starts_with("#!lua flags=allow-oom\n-- prelude"));
        }
        for (name, body) in [
            ("enqueue", include_str!("lua/enqueue.lua")),
            ("fire", include_str!("lua/fire.lua")),
            ("schedule_upsert", include_str!("lua/schedule_upsert.lua")),
            ("lock_acquire", include_str!("lua/lock_acquire.lua")),
            ("lock_fenced_set", include_str!("lua/lock_fenced_set.lua")),
            ("retry", include_str!("lua/retry.lua")),
            ("reschedule", include_str!("lua/reschedule.lua")),
        ] {
            assert!(
                !body.starts_with("#!"),
                "{name}.lua adds work: no allow-oom"
            );
            assert!(assemble(body).starts_with("-- prelude"));
        }
        assert_eq!(SCRIPTS.all().len(), 22);
    }
}
