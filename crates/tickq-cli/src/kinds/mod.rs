//! The job kinds built into `tickq server`: `exec` runs an allowed program, `http` makes one
//! request, `flow` submits a workflow (a `[[cron]]` table with steps fires one per tick).

pub mod exec;
pub mod flow;
pub mod http;
