//! The Lua scripts, one per state transition (`lua/*.lua`), each prefixed with the part of
//! `lua/prelude.lua` it uses.
//!
//! Scripts are sent with EVALSHA; `Script::invoke_async` loads a script again when Redis
//! answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH).

use redis::Script;
use std::collections::HashSet;
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
                "local held = run and string.sub(run, 1, #fence + 1) == fence .. ' '",
                "local held = run",
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

/// The prelude's definitions the script uses, then the script. A script's first line may be a
/// Redis 7 shebang (`#!lua flags=allow-oom` on the scripts that must run when Redis is full,
/// see `memory.rs`), which Redis reads only as the very first line: it goes before the prelude.
fn assemble(body: &str) -> String {
    match body.strip_prefix("#!") {
        Some(rest) => {
            let (shebang, rest) = rest.split_once('\n').unwrap_or((rest, ""));
            format!("#!{shebang}\n{}\n{rest}", prelude_for(rest))
        }
        None => format!("{}\n{body}", prelude_for(body)),
    }
}

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The prelude cut to what `body` uses. Redis runs a script's top level on every call, so each
/// `local function` of the prelude is created anew each time: the whole prelude costs about
/// 2 µs of Redis time per call (docs/benchmarks.md, "The prelude, per script"), most scripts
/// use a fraction of it. A top-level `local` definition (with the comments above it) is kept
/// when the body, or a kept definition below it, names it; Lua lets a definition use only
/// the locals above it, so one pass from the bottom up finds them all. Naming one in a comment
/// keeps it too (harmless).
fn prelude_for(body: &str) -> String {
    let definitions = &*PRELUDE_DEFINITIONS;
    let mut wanted: HashSet<&str> = words(body).collect();
    let mut keep = vec![false; definitions.len()];
    for (i, definition) in definitions.iter().enumerate().rev() {
        if definition.names.iter().any(|name| wanted.contains(name)) {
            keep[i] = true;
            wanted.extend(words(&definition.text));
        }
    }
    definitions
        .iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(definition, _)| definition.text.as_str())
        .collect()
}

/// One top-level `local` of the prelude: its text (the comment lines above it included) and
/// the names it defines.
struct Definition {
    text: String,
    names: Vec<&'static str>,
}

/// The prelude cut into its definitions once, for every script.
static PRELUDE_DEFINITIONS: LazyLock<Vec<Definition>> = LazyLock::new(prelude_definitions);

/// The prelude as its top-level definitions, in order; together they are the whole file.
/// Comment and blank lines at the left margin belong to the definition below them; every other
/// line (a function's body, its closing `end`) to the one above.
fn prelude_definitions() -> Vec<Definition> {
    let mut definitions: Vec<Definition> = Vec::new();
    let mut above = String::new();
    for line in PRELUDE.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("local ") {
            let names = match rest.strip_prefix("function ") {
                Some(rest) => rest.split('(').next().unwrap_or_default(),
                None => rest.split('=').next().unwrap_or_default(),
            };
            definitions.push(Definition {
                text: std::mem::take(&mut above) + line,
                names: names.split(',').map(str::trim).collect(),
            });
        } else if line.starts_with("--") || line.trim().is_empty() || definitions.is_empty() {
            above.push_str(line);
        } else {
            definitions
                .last_mut()
                .expect("checked above")
                .text
                .push_str(line);
        }
    }
    if let Some(last) = definitions.last_mut() {
        last.text.push_str(&above);
    }
    definitions
}

/// The identifiers (and other words) of Lua text.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
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
    upgrade,
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
    flow_drop_part,
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
            ("flow_drop_part", include_str!("lua/flow_drop_part.lua")),
            ("upgrade", include_str!("lua/upgrade.lua")),
        ];
        for (name, body) in allow_oom {
            assert!(
                body.starts_with("#!lua flags=allow-oom\n"),
                "{name}.lua must run when Redis is full"
            );
            assert!(assemble(body).starts_with("#!lua flags=allow-oom\n"));
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
            assert!(!assemble(body).starts_with("#!"));
        }
        assert_eq!(SCRIPTS.all().len(), 33);
    }

    /// Cutting the prelude into definitions loses no line, and a body that names every
    /// definition gets the whole prelude back.
    #[test]
    fn the_prelude_is_its_definitions() {
        let definitions = prelude_definitions();
        let joined: String = definitions.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(joined, PRELUDE);
        let every_name: Vec<&str> = definitions.iter().flat_map(|d| d.names.clone()).collect();
        assert!(every_name.contains(&"now_ms") && every_name.contains(&"EVENTS_MAX"));
        assert_eq!(prelude_for(&every_name.join(" ")), PRELUDE);
    }

    /// A script gets the definitions it names and those they use, and nothing else.
    #[test]
    fn a_script_gets_the_prelude_it_uses() {
        assert_eq!(prelude_for("return 1"), "");
        let publish = prelude_for("event('active', id)\npublish(prefix)");
        for name in [
            "EVENTS_MAX",
            "events",
            "events_left_out",
            "function event",
            "function publish",
        ] {
            assert!(
                publish.contains(&format!("local {name}")),
                "{name} missing:\n{publish}"
            );
        }
        assert!(!publish.contains("local function now_ms"), "{publish}");
        // A helper's helpers come along: `promote` uses `job_get_idle`, `job_set_idle`,
        // `event`, `pending_push` and `zrem_many`, and `pending_push` uses `pending_upgrade`.
        let promote = prelude_for("promote(prefix, KEYS[2], now, 1000)");
        for name in [
            "promote",
            "job_get_idle",
            "job_set_idle",
            "event",
            "pending_push",
            "pending_upgrade",
            "zrem_many",
        ] {
            assert!(
                promote.contains(&format!("local function {name}(")),
                "{name} missing"
            );
        }
        // Every shipped script is smaller than with the whole prelude.
        for (name, body) in sources() {
            assert!(assemble(body).len() < PRELUDE.len() + body.len(), "{name}");
        }
    }
}
