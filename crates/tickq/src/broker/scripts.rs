//! The Lua scripts, one per state transition (`lua/*.lua`), each prefixed with `lua/prelude.lua`.
//!
//! Scripts are sent with EVALSHA; `Script::invoke_async` loads a script again when Redis
//! answers NOSCRIPT (after a restart, a failover or SCRIPT FLUSH).

use redis::Script;
use std::sync::LazyLock;

/// The script set: one field per `lua/<name>.lua`, the static that holds them, and `all()`
/// (loaded at connect), generated from one list so the three cannot disagree.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        pub(crate) struct Scripts {
            $(pub(crate) $name: Script,)*
        }

        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $($name: Script::new(concat!(
                include_str!("lua/prelude.lua"),
                "\n",
                include_str!(concat!("lua/", stringify!($name), ".lua"))
            )),)*
        });

        impl Scripts {
            pub(crate) fn all(&self) -> Vec<&Script> {
                vec![$(&self.$name),*]
            }
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
}
