//! The command line as clap sees it: raw values, checked only for shape. `config.rs` turns
//! them into a typed, validated [`crate::config::Invocation`] before anything starts.

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// tickq: a distributed job queue and scheduler on Redis.
///
/// Redis is found from --redis, then the environment variable TICKQ_REDIS_URL, then `redis` in
/// the config file, then redis://127.0.0.1:6379. For TLS (rediss://) with a private CA or a
/// client certificate, TICKQ_REDIS_CA, TICKQ_REDIS_CERT and TICKQ_REDIS_KEY (PEM files) win
/// over `[redis_tls] ca_file, cert_file, key_file` in the config file.
#[derive(Debug, Parser)]
#[command(
    name = "tickq",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Redis URL: redis://[user:pass@]host:port[/db], rediss://... (TLS; certificates from
    /// TICKQ_REDIS_CA/CERT/KEY or [redis_tls]) or redis+unix:///path/redis.sock [default: $TICKQ_REDIS_URL, then `redis` in the config
    /// file, then redis://127.0.0.1:6379]
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    pub redis: Option<String>,

    /// TOML config file (see `tickq config show` for the effective result).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace); RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    /// Log line format (logs go to stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Human,
        value_name = "FORMAT",
        help_heading = GLOBAL
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: workers for the configured queues, with the built-in `exec` job kind, and
    /// the scheduler that fires cron schedules.
    ///
    /// With no Redis address given anywhere and none answering at 127.0.0.1:6379, it starts
    /// its own redis-server there (data under --data) and stops it on exit. SIGTERM or SIGINT
    /// drains running jobs; a second signal hands them back at once.
    ///
    /// On boot, every [[cron]] table of the config file is created or updated in Redis (the
    /// same spec again changes nothing). Every node fires every schedule stored in Redis,
    /// whichever node or `tickq cron add` put it there, and each tick fires once however many
    /// nodes run. A schedule that is in Redis but not in this node's config is left alone,
    /// since another node's config may own it: remove it with `tickq cron rm NAME`.
    Server(ServerArgs),
    /// Enqueue a job; prints its id.
    Enqueue(EnqueueArgs),
    /// Enqueue an `exec` job that runs PROGRAM with ARGS on a server whose [exec] allow list
    /// has PROGRAM; prints its id.
    Exec(ExecArgs),
    /// Show one job: state, attempts, times, progress, last error, result.
    ///
    /// With --wait, first wait until the job ends, and exit with its outcome: 0 when it
    /// completed, 1 when it went dead or was cancelled or deleted, or was still not done after
    /// --timeout.
    Job(JobArgs),
    /// List a queue's jobs in one state (or every state), with filters and a cursor.
    ///
    /// Waiting jobs come next-to-run first, active ones oldest start first, finished ones
    /// newest first. With a filter, one call examines a bounded number of jobs: when the
    /// output says there is more, pass --cursor with the value it gives to go on.
    Jobs(JobsArgs),
    /// Act on every job of a queue in one state that matches the filters: retry, kill,
    /// delete or cancel them, in bounded batches. --dry-run only counts them.
    Bulk(BulkArgs),
    /// The live nodes: name, version, queues, and the jobs each one runs now.
    Nodes(OutputArgs),
    /// Per-minute history kept in Redis (8 days): enqueued, processed, failed, retried, dead,
    /// run times.
    History(HistoryArgs),
    /// Per queue: jobs by state, processed and failed totals.
    Stats(OutputArgs),
    /// Run a dead, cancelled, retry or scheduled job now.
    Retry(IdArgs),
    /// Send a job that is not running (waiting, scheduled, pending or retry) to dead; it can be
    /// retried later.
    Kill(IdArgs),
    /// Delete a job that is not running.
    Delete(IdArgs),
    /// Cancel a job; a running one is stopped by its worker.
    Cancel(IdArgs),
    /// Queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Cron schedules: jobs created on a timetable by the nodes' schedulers.
    #[command(subcommand)]
    Cron(CronCommand),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Locks: run a program while holding a lock, and the lock's fenced values.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Workflows: DAGs of jobs where each step starts when its parents have ended
    /// (docs/workflows.md).
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Check the deployment: Redis version, persistence, eviction policy, memory, this
    /// machine's clock against Redis', this user's ACL permissions, and (with --config) the
    /// [exec] allow list. Exits 1 when something is wrong, naming each problem and what to do;
    /// warnings (persistence off, exec off) do not fail.
    Doctor(OutputArgs),
}

/// The settings of a node that flags can override; shared by `server` and `config show`.
#[derive(Debug, Args)]
pub struct ServerOpts {
    /// This node's name [default: `node` in the config file, then hostname-pid].
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// Queues to work and their weights, e.g. `critical=3,default=1` [default: default=1];
    /// `hot=1:4` works `hot` as a sharded queue of 4 shards (spread over a Redis Cluster's
    /// masters; the count is fixed once set).
    #[arg(long, value_name = "Q=W[:SHARDS],...")]
    pub queues: Option<String>,

    /// Most jobs running at once [default: 16].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Serve HTTP (GET /healthz, GET /metrics) on ADDR, e.g. 127.0.0.1:7700. A non-loopback
    /// address needs `[http] token` in the config file.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Data directory; an embedded redis-server keeps its data in DIR/redis [default: ./.tickq].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of a new job, shared by `enqueue` and `exec`.
#[derive(Debug, Args)]
pub struct JobOpts {
    /// Run after this delay (DUR: 500ms, 30s, 5m, 2h, 1d).
    #[arg(long = "in", value_name = "DUR", conflicts_with = "at")]
    pub delay: Option<String>,

    /// Run at this time (TIME: RFC 3339 with an offset, or Unix ms).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// The job id [default: a new UUID v7]. An id that exists is not enqueued again.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Keep the job unique for DUR: while a job of the same kind and payload (or the same
    /// --unique-key) waits or runs in the queue, nothing is enqueued and the command exits 1
    /// naming that job. The job's end, or DUR passing, frees the key.
    #[arg(long, value_name = "DUR")]
    pub unique_for: Option<String>,

    /// The key --unique-for compares instead of the kind and payload.
    #[arg(long, value_name = "KEY", requires = "unique_for")]
    pub unique_key: Option<String>,

    /// On a sharded queue, the shard is chosen by this key: jobs with the same key share a
    /// shard and keep their order among themselves. Not with --unique-for (a unique job goes
    /// to the shard of its unique key).
    #[arg(long, value_name = "KEY", conflicts_with = "unique_for")]
    pub shard_key: Option<String>,

    /// Attempts before the job goes to dead [default: 25].
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,

    /// Time limit of one attempt [default: the worker's, 30m].
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<String>,

    /// Priority from -1000 to 1000; higher runs first [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The queue.
    pub queue: String,
    /// The job kind: which handler runs it.
    pub kind: String,
    /// The job's arguments: JSON text, `@FILE` to read it from a file, `@-` from stdin
    /// [default: null].
    #[arg(long, value_name = "JSON|@FILE")]
    pub payload: Option<String>,
    #[command(flatten)]
    pub job: JobOpts,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The queue.
    pub queue: String,
    /// An environment variable for the program (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The program's working directory on the node that runs it.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    #[command(flatten)]
    pub job: JobOpts,
    /// The program and its arguments, after `--`; the program must be on the server's
    /// [exec] allow list exactly as written here.
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Submit the workflow FILE describes (TOML: name, queue (its home), [[step]] tables, each
    /// in the home queue or its own `queue`, [[batch]] tables with
    /// on_complete/on_success/on_failure callbacks); prints its id.
    /// Running a file with a fixed id (`id = "..."` or --id) again creates nothing.
    Run(FlowRunArgs),
    /// List workflows, newest first: those running and the finished ones within their
    /// retention.
    Ls(FlowLsArgs),
    /// Show a workflow: its state and each step's state and queue.
    Show(FlowIdArgs),
    /// Cancel a workflow: running steps are stopped, the others cancelled.
    Cancel(FlowIdArgs),
    /// Start a failed workflow's dead and cancelled steps over.
    Retry(FlowIdArgs),
}

#[derive(Debug, Args)]
pub struct FlowRunArgs {
    /// The workflow file (TOML).
    pub file: String,
    /// The workflow id (overrides the file's `id`). Default: a fresh UUID.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FlowLsArgs {
    /// Only the workflows whose home is this queue [default: every queue's].
    pub queue: Option<String>,
    /// At most this many workflows (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FlowIdArgs {
    /// The workflow id.
    pub id: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The job id.
    pub id: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job id.
    pub id: String,
    /// Wait until the job ends (completed, dead or cancelled), then show it.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (DUR) [default: wait as long as it takes].
    #[arg(long, value_name = "DUR", requires = "wait")]
    pub timeout: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Which jobs of a state: shared by `jobs` and `bulk`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only jobs of this kind.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only jobs whose payload (as JSON text) contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only jobs whose last error contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
    /// Only jobs whose time in the state (due, start or end) is at or after TIME.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only jobs whose time in the state is before TIME.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The queue.
    pub queue: String,
    /// Only jobs in this state: waiting scheduled pending active retry dead completed cancelled
    /// [default: all, in that order; with a filter or --cursor: pending].
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Go on from where the previous page stopped (its `next_cursor`).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// At most this many jobs (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct BulkArgs {
    /// The queue.
    pub queue: String,
    /// What to do: retry, kill, delete or cancel.
    pub action: String,
    /// The jobs' state: waiting scheduled pending active retry dead completed cancelled.
    #[arg(long, value_name = "STATE")]
    pub state: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only count the jobs that match.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// One queue [default: every queue, summed].
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Start (TIME) [default: an hour before --to].
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End (TIME) [default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Width of one row, whole minutes (DUR) [default: 1m].
    #[arg(long, value_name = "DUR")]
    pub step: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Every queue that has received a job; paused and limited ones are marked (`--json`:
    /// the document of `tickq stats --json`).
    Ls(OutputArgs),
    /// Stop workers from starting jobs of a queue; running jobs finish, enqueues go on.
    Pause(QueueArgs),
    /// Let workers start jobs of a paused queue again.
    Resume(QueueArgs),
    /// Delete every job of a queue in one state (not active: cancel those); prints how many.
    Purge(QueuePurgeArgs),
    /// Show or change a queue's limits, which hold on every node at once: how many of its
    /// jobs run at once, and how many start per interval. Jobs over a limit wait.
    Limit(QueueLimitArgs),
    /// A sharded queue's parts: its base queue (jobs from before it was sharded) and each
    /// shard, with its Redis Cluster hash slot, waiting and running jobs, and jobs processed.
    Shards(QueueArgs),
}

#[derive(Debug, Args)]
pub struct QueueLimitArgs {
    /// The queue.
    pub queue: String,
    /// At most N jobs of the queue active at once, across all nodes (`none`: no limit).
    #[arg(long, value_name = "N|none")]
    pub concurrency: Option<String>,
    /// At most JOBS starts in any window of DUR, across all nodes, e.g. 50/1s (`none`: no
    /// limit).
    #[arg(long, value_name = "JOBS/DUR|none")]
    pub rate: Option<String>,
    /// Remove every limit of the queue.
    #[arg(long, conflicts_with_all = ["concurrency", "rate"])]
    pub clear: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue.
    pub queue: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct QueuePurgeArgs {
    /// The queue.
    pub queue: String,
    /// The state whose jobs go: waiting scheduled pending retry dead completed cancelled.
    #[arg(long, value_name = "STATE", required = true)]
    pub state: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Every schedule: timetable, next fire time, last fire, counts.
    Ls(OutputArgs),
    /// Create a schedule, or change the one of that name; prints created, updated or
    /// unchanged.
    ///
    /// One task per schedule from the command line: `--exec -- PROGRAM ARGS...` for an exec
    /// job, or `--kind KIND [--payload JSON]` for any other kind. Schedules with several tasks
    /// go in a [[cron]] table of the config file. A node whose config has a [[cron]] table of
    /// the same name puts its own version back when it boots.
    Add(CronAddArgs),
    /// Remove a schedule; jobs it already created are left alone.
    Rm(CronNameArgs),
    /// Create a schedule's jobs now, outside its timetable; prints their ids.
    Trigger(CronNameArgs),
    /// Stop a schedule from firing; ticks missed while paused follow its catch-up policy when
    /// it is resumed.
    Pause(CronNameArgs),
    /// Let a paused schedule fire again.
    Resume(CronNameArgs),
    /// The next fire times of a cron expression, as RFC 3339 in its time zone (needs no
    /// Redis).
    Next(CronNextArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("task").required(true).args(["exec", "kind"])))]
pub struct CronAddArgs {
    /// The schedule's name, unique across queues (no spaces or ':').
    pub name: String,
    /// The cron expression: 5 fields (`0 2 * * *`), 6 with seconds, a macro (`@daily`) or
    /// `@every DUR` (`@every 30s`). Quote it for the shell.
    pub schedule: String,
    /// The queue its jobs go to.
    #[arg(long, value_name = "QUEUE")]
    pub queue: String,
    /// The IANA time zone the expression is read in, e.g. Asia/Shanghai [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// What a tick does while the previous tick's jobs are still waiting or running: fire
    /// anyway, skip the tick, or cancel the previous jobs and fire [default: allow].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub overlap: Option<OverlapArg>,
    /// Which missed ticks fire when the schedule is found late: none, the latest one, or all
    /// of them (up to 100) [default: latest].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub catchup: Option<CatchupArg>,
    /// Each tick enqueues an exec job running PROGRAM ARGS (given after `--`); PROGRAM must be
    /// on the [exec] allow list of the nodes that work QUEUE.
    #[arg(long, requires = "cmd")]
    pub exec: bool,
    /// An environment variable for the exec job's program (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", conflicts_with = "kind")]
    pub env: Vec<String>,
    /// The exec job's working directory on the node that runs it.
    #[arg(long, value_name = "DIR", conflicts_with = "kind")]
    pub cwd: Option<String>,
    /// Each tick enqueues a job of this kind.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// The job's arguments with --kind: JSON text, `@FILE` or `@-` for stdin [default: null].
    #[arg(long, value_name = "JSON|@FILE", conflicts_with = "exec")]
    pub payload: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// With --exec: the program and its arguments, after `--`.
    #[arg(last = true, value_name = "PROGRAM [ARGS]", conflicts_with = "kind")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OverlapArg {
    Allow,
    Forbid,
    Replace,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CatchupArg {
    Skip,
    Latest,
    All,
}

#[derive(Debug, Args)]
pub struct CronNameArgs {
    /// The schedule's name.
    pub name: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct CronNextArgs {
    /// The cron expression, as for `tickq cron add`.
    pub schedule: String,
    /// The IANA time zone the expression is read in and the times are shown in
    /// [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Fire times strictly after this TIME (RFC 3339 with an offset, or Unix ms)
    /// [default: now].
    #[arg(long, value_name = "TIME")]
    pub after: Option<String>,
    /// How many fire times, 1 to 1000.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub count: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective server configuration (file, environment and flags), secrets redacted.
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    #[command(flatten)]
    pub opts: ServerOpts,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Run PROGRAM while holding the lock NAME, renewing it as long as the program runs.
    ///
    /// The program runs with TICKQ_LOCK=NAME, TICKQ_FENCE set to this holder's fencing token
    /// (greater than every earlier holder's) and TICKQ_REDIS_URL set to the lock's Redis, in
    /// its own process group; SIGTERM and SIGINT sent to `tickq lock run` are passed on to it.
    /// The lock is released when it exits.
    ///
    /// If the lock is lost while the program runs (Redis says another holder has it, or no
    /// renewal succeeded within the TTL, e.g. because this process was stopped), the program's
    /// group gets SIGTERM, then SIGKILL after --grace.
    ///
    /// Exit status: the program's (128+N if a signal N ended it); 75 without running the
    /// program when the lock was not had within --wait; 75 with "lock lost" on stderr when
    /// the lock was lost while the program ran, whatever the program's own status.
    Run(LockRunArgs),
    /// The locks held now (name, fence, time left), and those taken in the last week.
    Ls(OutputArgs),
    /// Write VALUE under KEY in the lock's fenced store, if FENCE is the lock's latest fence.
    ///
    /// Exit status 1 with "stale fence" when it is not (a newer holder has the lock; nothing
    /// was written).
    Set(LockSetArgs),
    /// Print the value under KEY in the lock's fenced store (--json: with the writer's fence).
    Get(LockGetArgs),
}

#[derive(Debug, Args)]
pub struct LockRunArgs {
    /// The lock's name: letters, digits, '_', '-', '.', ':' or '/'.
    pub name: String,
    /// How long the lock outlives this process if it dies or stalls; renewed every third of it
    /// while the program runs [default: 30s].
    #[arg(long, value_name = "DUR")]
    pub ttl: Option<String>,
    /// How long to wait for the lock while someone else holds it [default: 0, do not wait].
    #[arg(long, value_name = "DUR")]
    pub wait: Option<String>,
    /// After the lock is lost: how long the program has between SIGTERM and SIGKILL
    /// [default: 10s].
    #[arg(long, value_name = "DUR")]
    pub grace: Option<String>,
    /// The program and its arguments, after `--` (run directly, not through a shell).
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LockSetArgs {
    /// The lock's name.
    pub name: String,
    /// The key of the value.
    pub key: String,
    /// The value (text).
    pub value: String,
    /// The writer's fencing token [default: $TICKQ_FENCE, set by `tickq lock run`].
    #[arg(long, value_name = "N", env = "TICKQ_FENCE")]
    pub fence: Option<u64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LockGetArgs {
    /// The lock's name.
    pub name: String,
    /// The key of the value.
    pub key: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
