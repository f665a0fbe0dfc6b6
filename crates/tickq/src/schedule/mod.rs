//! Jobs on a schedule: cron expressions, schedule specs, and the leaderless [`Scheduler`].
//!
//! A tick is an identity, (schedule, nominal UTC instant). Any node that finds a schedule due
//! fires it through one atomic script that compare-and-sets the schedule's next fire time, so
//! when several nodes race, one fires and the others do nothing; the tick's jobs have
//! deterministic ids (`cron:<name>:<tick ms>:<task>`) as a second guard. See
//! `docs/scheduling.md`.

mod cron;
mod registry;
mod scheduler;
pub(crate) mod spec;

pub use cron::{CronError, CronErrorPart, CronSchedule};
pub use scheduler::{Scheduler, SchedulerBuilder};
pub use spec::{
    Catchup, MAX_CATCHUP, MISFIRE_GRACE, Overlap, ScheduleInfo, ScheduleSpec, Task, Upserted,
};
