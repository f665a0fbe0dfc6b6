//! Scheduler: fires due schedules. Run one on every node; there is no leader.
//!
//! It sleeps until the earliest next fire time of any schedule (a Redis-clock duration, so a
//! node's clock skew changes nothing), then computes the due ticks with the cron engine and
//! calls the fire script. When nodes race, the script's compare-and-set lets exactly one fire;
//! the others see `raced` and move on.

use super::{Catchup, CronSchedule, MAX_CATCHUP, MISFIRE_GRACE};
use crate::broker::message::Envelope;
use crate::broker::schedules::{FireOutcome, StoredSchedule, TickJob};
use crate::broker::{Broker, Retention, keys::QueueKeys};
use crate::shutdown::ShutdownHandle;
use crate::{Client, DEFAULT_MAX_ATTEMPTS, Result};
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Longest walk over missed ticks before giving up on finding the latest one.
const MAX_TICK_SCAN: usize = 1_000_000;

/// Builds a [`Scheduler`].
pub struct SchedulerBuilder {
    broker: Broker,
    retention: Retention,
    max_sleep: Duration,
    shutdown: Option<ShutdownHandle>,
}

impl std::fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("max_sleep", &self.max_sleep)
            .finish_non_exhaustive()
    }
}

impl SchedulerBuilder {
    /// Stop with this handle (shared with other parts of the node, say the worker). Default: a
    /// handle of its own ([`Scheduler::shutdown_handle`]).
    pub fn shutdown(mut self, handle: ShutdownHandle) -> SchedulerBuilder {
        self.shutdown = Some(handle);
        self
    }

    /// The longest the scheduler sleeps without looking at Redis, which bounds how long a new
    /// schedule that is due sooner than every existing one waits. Default: 5 s.
    pub fn max_sleep(mut self, max: Duration) -> SchedulerBuilder {
        self.max_sleep = max;
        self
    }

    /// Build the scheduler.
    pub fn build(self) -> Scheduler {
        Scheduler {
            broker: self.broker,
            retention: self.retention,
            max_sleep: self.max_sleep,
            parsed: Mutex::default(),
            fired: AtomicU64::default(),
            shutdown: self.shutdown.unwrap_or_default(),
        }
    }
}

/// Fires the schedules stored in Redis when they are due.
///
/// ```no_run
/// # async fn demo() -> tickq::Result<()> {
/// use tickq::{Client, Scheduler, ScheduleSpec, Task};
///
/// let client = Client::connect("redis://127.0.0.1:6379").await?;
/// let nightly = ScheduleSpec::new("nightly", "default", "0 2 * * *")
///     .timezone("Asia/Shanghai")
///     .task(Task::new("report", serde_json::json!({"part": 1})));
/// client.upsert_schedule(&nightly).await?; // same spec again: no-op
/// let scheduler = Scheduler::builder(&client).build();
/// scheduler.shutdown_handle().on_signals()?;
/// scheduler.run().await?;
/// # Ok(()) }
/// ```
pub struct Scheduler {
    broker: Broker,
    retention: Retention,
    max_sleep: Duration,
    parsed: Mutex<HashMap<(String, String), Arc<CronSchedule>>>,
    fired: AtomicU64,
    shutdown: ShutdownHandle,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("max_sleep", &self.max_sleep)
            .field("fired", &self.fired)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Start building a scheduler that uses `client`'s connection.
    pub fn builder(client: &Client) -> SchedulerBuilder {
        SchedulerBuilder {
            broker: client.broker.clone(),
            retention: client.retention,
            max_sleep: Duration::from_secs(5),
            shutdown: None,
        }
    }

    /// A handle that stops this scheduler.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Ticks this scheduler fired (the others found them fired already).
    pub fn ticks_fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    /// Run until the shutdown handle is used.
    pub async fn run(&self) -> Result<()> {
        let stop = self.shutdown.graceful_token();
        loop {
            let pass = match self.fire_due().await {
                Ok(pass) => pass,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; trying again shortly");
                    Pass {
                        wake_at: Instant::now() + Duration::from_secs(1),
                        armed: None,
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(pass.wake_at) => {}
                _ = stop.cancelled() => return Ok(()),
            }
            if let Some(armed) = pass.armed {
                // The tick is due now: fire it with what was read before the sleep, in one
                // round trip, instead of reading the index and the schedule again first. The
                // script's compare-and-set on (version, next) turns a stale read into 'raced'
                // and a clock reading ahead of Redis' into 'early'; the next pass then looks
                // again, so nothing fires wrongly, at worst a pass later.
                let now = armed.redis_now();
                if let Err(e) = self.fire_stored(&armed.keys, &armed.stored, now).await {
                    let name = &armed.stored.info.spec.name;
                    tracing::warn!(schedule = %name, error = %e, "could not fire schedule");
                }
            }
        }
    }

    /// Fire every due schedule once; answers when to look again (the next fire time, as a
    /// local instant reached no sooner than Redis' clock reaches it), and that next schedule
    /// read ahead (armed), so that it fires in one round trip when its time comes.
    async fn fire_due(&self) -> Result<Pass> {
        let queues: BTreeSet<String> = self.broker.schedule_index().await?.into_values().collect();
        let mut wake_at = Instant::now() + self.max_sleep;
        let mut earliest: Option<(Arc<QueueKeys>, String, i64, i64, Instant)> = None;
        let mut fired = false;
        for queue in queues {
            let keys = self.broker.keys(&queue);
            let (now, due) = self.broker.schedules_due(&keys).await?;
            // The reply left Redis after its clock read `now`: a local instant measured from
            // here is reached no sooner than the Redis-clock one, so no tick fires early.
            let read_at = Instant::now();
            for (name, next) in due {
                if next > now {
                    let at = read_at + Duration::from_millis((next - now) as u64);
                    if at < wake_at {
                        wake_at = at;
                        earliest = Some((keys.clone(), name, next, now, read_at));
                    }
                    break;
                }
                if let Err(e) = self.fire(&keys, &name, now).await {
                    tracing::warn!(schedule = %name, error = %e, "could not fire schedule");
                }
                // Look again at once: the fire moved this schedule's next time.
                fired = true;
            }
        }
        if fired {
            return Ok(Pass {
                wake_at: Instant::now(),
                armed: None,
            });
        }
        let mut armed = None;
        if let Some((keys, name, next, now, read_at)) = earliest
            && let Some(stored) = self.broker.schedule(&keys, &name).await?
            && stored.next_ms == next
            && !stored.info.paused
        {
            armed = Some(Armed {
                keys,
                stored,
                now,
                read_at,
            });
        }
        Ok(Pass { wake_at, armed })
    }

    fn cron(&self, expr: &str, zone: &str) -> Result<Arc<CronSchedule>> {
        let key = (expr.to_owned(), zone.to_owned());
        let mut parsed = self.parsed.lock().expect("cron cache poisoned");
        if let Some(c) = parsed.get(&key) {
            return Ok(c.clone());
        }
        let cron =
            CronSchedule::parse(expr, zone).map_err(|e| crate::Error::invalid(e.to_string()))?;
        let cron = Arc::new(cron);
        parsed.insert(key, cron.clone());
        Ok(cron)
    }

    /// Fire one schedule whose next time is at or before `now` (Redis ms, read in this pass;
    /// the fire script checks Redis' clock again, so a reading a moment old never fires early).
    async fn fire(&self, keys: &QueueKeys, name: &str, now: i64) -> Result<()> {
        let Some(stored) = self.broker.schedule(keys, name).await? else {
            return Ok(());
        };
        self.fire_stored(keys, &stored, now).await
    }

    /// Fire `stored` (as read a moment ago) if its next time is at or before `now` (Redis ms,
    /// never ahead of Redis' clock).
    async fn fire_stored(&self, keys: &QueueKeys, stored: &StoredSchedule, now: i64) -> Result<()> {
        let spec = &stored.info.spec;
        let name = spec.name.as_str();
        if stored.info.paused || stored.next_ms < 0 {
            return Ok(());
        }
        if stored.next_ms > now {
            return Ok(());
        }
        let cron = self.cron(&spec.cron, &spec.timezone)?;
        let due = DueTicks::scan(&cron, stored.next_ms, now);
        let fire: Vec<i64> = match spec.catchup {
            Catchup::Skip => {
                let grace = MISFIRE_GRACE.as_millis() as i64;
                due.recent
                    .iter()
                    .copied()
                    .filter(|t| now - t <= grace)
                    .collect()
            }
            Catchup::Latest => vec![due.latest()],
            Catchup::All => due.recent.iter().copied().collect(),
        };
        let skipped = due.total - fire.len() as u64;
        let new_next = cron
            .next_after(ms_to_ts(now))
            .map(|t| t.as_millisecond())
            .unwrap_or(-1);
        let mut jobs = Vec::with_capacity(fire.len() * spec.tasks.len());
        for &tick in &fire {
            let group = format!("cron:{}:{tick}", spec.name);
            for (i, task) in spec.tasks.iter().enumerate() {
                let id = spec.job_id(tick, i);
                let meta = BTreeMap::from([
                    ("cron".to_owned(), spec.name.clone()),
                    ("scheduled_at".to_owned(), tick.to_string()),
                ]);
                let data = Envelope::new(
                    id.clone(),
                    &spec.queue,
                    &task.kind,
                    task.payload.clone(),
                    task.timeout_ms,
                    meta,
                );
                jobs.push(TickJob {
                    id,
                    data: data.encode(),
                    priority: task.priority,
                    max_attempts: task.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
                    group: group.clone(),
                });
            }
        }
        let outcome = self
            .broker
            .fire(
                keys,
                &self.retention,
                name,
                stored.info.version,
                stored.next_ms,
                new_next,
                due.latest(),
                skipped,
                fire.len() as u64,
                &jobs,
            )
            .await?;
        match outcome {
            FireOutcome::Fired(created) => {
                if !fire.is_empty() {
                    self.fired.fetch_add(fire.len() as u64, Ordering::Relaxed);
                }
                tracing::info!(schedule = %name, ticks = fire.len(), skipped, jobs = created, "fired");
            }
            FireOutcome::Overlap => {
                tracing::info!(schedule = %name, "tick skipped: the previous tick's jobs are still running (overlap = forbid)");
            }
            other => tracing::debug!(schedule = %name, ?other, "not fired here"),
        }
        Ok(())
    }
}

/// What one pass found: when to look again, and the schedule due then.
struct Pass {
    wake_at: Instant,
    armed: Option<Armed>,
}

/// The schedule due next, read before the scheduler sleeps until its time.
struct Armed {
    keys: Arc<QueueKeys>,
    stored: StoredSchedule,
    /// Redis' clock (ms) when the schedules were read, and the local instant the reply came.
    now: i64,
    read_at: Instant,
}

impl Armed {
    /// Redis' clock now, never ahead of it: the clock read plus the local time since the reply
    /// came (the reply left Redis after the reading, so this is a lower bound). After sleeping
    /// until the pass's `wake_at`, it is at or past the tick.
    fn redis_now(&self) -> i64 {
        self.now + self.read_at.elapsed().as_millis() as i64
    }
}

/// The ticks due between a schedule's stored next time and now.
struct DueTicks {
    /// How many.
    total: u64,
    /// The most recent ones (at most MAX_CATCHUP), oldest first.
    recent: VecDeque<i64>,
}

impl DueTicks {
    fn scan(cron: &CronSchedule, first: i64, now: i64) -> DueTicks {
        let mut recent = VecDeque::from([first]);
        let mut total = 1u64;
        for t in cron.iter_after(ms_to_ts(first)).take(MAX_TICK_SCAN) {
            let t = t.as_millisecond();
            if t > now {
                break;
            }
            total += 1;
            recent.push_back(t);
            if recent.len() > MAX_CATCHUP {
                recent.pop_front();
            }
        }
        DueTicks { total, recent }
    }

    fn latest(&self) -> i64 {
        *self.recent.back().expect("at least the first due tick")
    }
}

fn ms_to_ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).expect("Redis time is a valid timestamp")
}
