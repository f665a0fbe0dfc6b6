//! One file per verb family. Each verb calls the library and hands what it got to
//! `output.rs`; none holds business rules.

mod config;
mod cron;
mod doctor;
mod enqueue;
mod flow;
mod jobs;
pub mod lock;
mod nodes;
mod queue;
mod stats;

use crate::config::Action;
use tickq::JobAction;

/// Run a verb (anything but `server`).
pub async fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Server(config) => crate::server::run(*config).await,
        Action::FlowRun { redis, flow, json } => flow::run(&redis, *flow, json).await,
        Action::Flow {
            redis,
            verb,
            id,
            json,
        } => flow::act(&redis, verb, &id, json).await,
        Action::FlowLs {
            redis,
            queue,
            limit,
            json,
        } => flow::ls(&redis, queue.as_deref(), limit, json).await,
        Action::ConfigShow { config, json } => config::show(&config, json),
        Action::Doctor {
            redis,
            exec_allow,
            json,
        } => doctor::doctor(&redis, exec_allow.as_deref(), json).await,
        Action::Enqueue { redis, job, json } => enqueue::enqueue(&redis, *job, json).await,
        Action::Job {
            redis,
            id,
            wait,
            json,
        } => jobs::job(&redis, &id, wait, json).await,
        Action::Jobs {
            redis,
            queue,
            state,
            filter,
            cursor,
            limit,
            json,
        } => {
            jobs::list(
                &redis,
                &queue,
                state,
                &filter,
                cursor.as_deref(),
                limit,
                json,
            )
            .await
        }
        Action::Bulk {
            redis,
            queue,
            action,
            state,
            filter,
            dry_run,
            json,
        } => jobs::bulk(&redis, &queue, action, state, &filter, dry_run, json).await,
        Action::Retry { redis, id, json } => jobs::act(&redis, JobAction::Retry, &id, json).await,
        Action::Kill { redis, id, json } => jobs::act(&redis, JobAction::Kill, &id, json).await,
        Action::Delete { redis, id, json } => jobs::act(&redis, JobAction::Delete, &id, json).await,
        Action::Cancel { redis, id, json } => jobs::act(&redis, JobAction::Cancel, &id, json).await,
        Action::Nodes { redis, json } => nodes::nodes(&redis, json).await,
        Action::History { redis, query, json } => nodes::history(&redis, &query, json).await,
        Action::LockLs { redis, json } => lock::list(&redis, json).await,
        Action::Stats { redis, json } => stats::stats(&redis, json).await,
        Action::QueueLs { redis, json } => queue::list(&redis, json).await,
        Action::QueuePause {
            redis,
            queue,
            paused,
            json,
        } => queue::pause(&redis, &queue, paused, json).await,
        Action::QueueLimit {
            redis,
            queue,
            change,
            json,
        } => queue::limit(&redis, &queue, change, json).await,
        Action::QueueShards { redis, queue, json } => queue::shards(&redis, &queue, json).await,
        Action::QueuePurge {
            redis,
            queue,
            state,
            json,
        } => queue::purge(&redis, &queue, state, json).await,
        Action::CronLs { redis, json } => cron::list(&redis, json).await,
        Action::CronAdd { redis, spec, json } => cron::add(&redis, &spec, json).await,
        Action::Cron {
            redis,
            verb,
            name,
            json,
        } => cron::named(&redis, verb, &name, json).await,
        Action::CronNext {
            cron,
            after,
            count,
            json,
        } => cron::next(&cron, after, count, json),
        Action::LockRun { redis, run } => lock::run(&redis, *run).await,
        Action::LockSet {
            redis,
            name,
            key,
            value,
            fence,
            json,
        } => lock::set(&redis, &name, &key, &value, fence, json).await,
        Action::LockGet {
            redis,
            name,
            key,
            json,
        } => lock::get(&redis, &name, &key, json).await,
    }
}
