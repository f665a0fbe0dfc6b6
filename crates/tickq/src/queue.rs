//! The queue model: a queue's counts by state and its totals, as Redis holds them.

use crate::QueueLimits;
use crate::job::JobState;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts of one queue's jobs by state, and its totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Jobs in each state (every state is present, zero or not).
    pub states: BTreeMap<JobState, u64>,
    /// Attempts that completed successfully, ever.
    pub processed: u64,
    /// Attempts that failed (each retry counts), ever.
    pub failed: u64,
    /// Whether the queue is paused (workers start none of its jobs).
    pub paused: bool,
    /// The queue's concurrency and rate limits.
    pub limits: QueueLimits,
}
