//! The Lua scripts, one per state transition (`lua/*.lua`), each prefixed with `lua/prelude.lua`.
//!
//! Scripts are sent with EVALSHA; `Script::invoke_async` loads a script again when Redis
//! answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH).

use redis::Script;
use std::sync::LazyLock;

/// TEST ONLY, not part of the interface, and read by debug builds only (a release build
/// ignores it): a comma-separated list of protections to switch off, so that the fault
/// harness can show its checker catching the broken guarantee. `ack-fence`: ack completes an
/// active job whatever the fence (a zombie's late ack is applied). `recovery`: expired leases
/// are never taken back (a dead worker's jobs stay active). `tick-watermark`: fire skips its
/// compare-and-set on the schedule's version and next time, so every node that found a tick
/// due fires it (the deterministic job ids still keep a repeated tick from creating a job
/// that exists).
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
            ("tick-watermark", "fire") => patch(
                source,
                "if f[1] ~= ARGV[3] or f[2] ~= ARGV[4] then return {'raced', 0} end\n",
                "",
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

/// The script set: one field per `lua/<name>.lua`, the static that holds them, and `all()`
/// (loaded at connect), generated from one list so the three cannot disagree.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        pub(crate) struct Scripts {
            $(pub(crate) $name: Script,)*
        }

        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $($name: Script::new(&disable_for_test(
                stringify!($name),
                assemble(include_str!(concat!("lua/", stringify!($name), ".lua"))),
            )),)*
        });

        impl Scripts {
            pub(crate) fn all(&self) -> Vec<&Script> {
                vec![$(&self.$name),*]
            }
        }

        /// Each script's name and its own source (without the prelude).
        #[cfg(test)]
        pub(crate) fn sources() -> Vec<(&'static str, &'static str)> {
            vec![$((
                stringify!($name),
                include_str!(concat!("lua/", stringify!($name), ".lua")),
            )),*]
        }
    };
}

scripts! {
    enqueue,
    claim,
    ack,
    fail,
    renew,
    recover,
    requeue,
    cancel,
    delete,
    retry,
    kill,
    reschedule,
    janitor,
    schedule_upsert,
    fire,
    schedule_pause,
    queue_pause,
    queue_purge,
    jobs_page,
    node_beat,
    node_list,
    progress,
    lock_acquire,
    lock_renew,
    lock_release,
    lock_fenced_set,
    flow_submit,
    flow_retry,
    flow_cancel,
    flow_settle,
    flow_relayed,
}

#[cfg(test)]
#[path = "scripts_header_tests.rs"]
mod header_tests;

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
            ("node_beat", include_str!("lua/node_beat.lua")),
            ("progress", include_str!("lua/progress.lua")),
            ("flow_cancel", include_str!("lua/flow_cancel.lua")),
            ("flow_settle", include_str!("lua/flow_settle.lua")),
            ("flow_relayed", include_str!("lua/flow_relayed.lua")),
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
            ("flow_submit", include_str!("lua/flow_submit.lua")),
            ("flow_retry", include_str!("lua/flow_retry.lua")),
        ] {
            assert!(
                !body.starts_with("#!"),
                "{name}.lua adds work: no allow-oom"
            );
            assert!(assemble(body).starts_with("-- prelude"));
        }
        assert_eq!(SCRIPTS.all().len(), 31);
    }
}
