//! Queue limits shared by every worker: how many jobs of a queue may run at once, and how many
//! may start per interval. Stored in Redis and read by every claim, so a change applies on
//! every node at once.

use crate::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// At most `jobs` starts in any window of `per` (a sliding window, not fixed buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed per window.
    pub jobs: u32,
    /// The window.
    pub per: Duration,
}

impl Rate {
    /// `jobs` starts per `per`.
    pub fn new(jobs: u32, per: Duration) -> Rate {
        Rate { jobs, per }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.per.as_millis();
        let per = if ms.is_multiple_of(3_600_000) {
            format!("{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        write!(f, "{}/{per}", self.jobs)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Rate", 2)?;
        st.serialize_field("jobs", &self.jobs)?;
        st.serialize_field("per_ms", &(self.per.as_millis() as u64))?;
        st.end()
    }
}

/// `{"jobs": N, "per_ms": MS}`, as [`Rate`] serialises.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Rate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .property("jobs", ObjectBuilder::new().schema_type(Type::Integer))
            .required("jobs")
            .property("per_ms", ObjectBuilder::new().schema_type(Type::Integer))
            .required("per_ms")
            .description(Some(
                "At most `jobs` starts in any window of `per_ms` milliseconds",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Rate {}

/// The limits of one queue, across every worker on every node. Jobs over a limit wait in
/// `pending`; none fails because of a limit.
///
/// ```no_run
/// # async fn demo(inspector: tickq::Inspector) -> tickq::Result<()> {
/// use std::time::Duration;
/// use tickq::{QueueLimits, Rate};
///
/// let limits = QueueLimits {
///     concurrency: Some(3),
///     rate: Some(Rate::new(50, Duration::from_secs(1))),
/// };
/// inspector.set_limits("emails", limits).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueLimits {
    /// At most this many jobs of the queue active at once. `None`: no limit.
    pub concurrency: Option<u32>,
    /// At most this many starts per interval. `None`: no limit.
    pub rate: Option<Rate>,
}

impl QueueLimits {
    /// No limit at all.
    pub fn is_unlimited(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none()
    }

    /// Check the limits (what [`crate::Inspector::set_limits`] checks): a concurrency of at
    /// least 1, and a rate of at least 1 job per window of at least 1 ms.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == Some(0) {
            return Err(Error::invalid(
                "a concurrency limit must be at least 1 (to stop a queue, pause it)",
            ));
        }
        if let Some(rate) = self.rate {
            if rate.jobs == 0 {
                return Err(Error::invalid(
                    "a rate limit must allow at least 1 job per interval (to stop a queue, pause \
                     it)",
                ));
            }
            if rate.per < Duration::from_millis(1) {
                return Err(Error::invalid(
                    "a rate limit's interval must be at least 1 ms",
                ));
            }
        }
        Ok(())
    }
}

/// A change to a queue's limits: each `Some` replaces that limit (`Some(None)` removes it);
/// `None` keeps it. What `tickq queue limit` and `PUT /api/queues/{q}/limits` send
/// ([`crate::Inspector::change_limits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsChange {
    /// The new concurrency limit, if it changes.
    pub concurrency: Option<Option<u32>>,
    /// The new rate limit, if it changes.
    pub rate: Option<Option<Rate>>,
}

impl LimitsChange {
    /// Every limit removed.
    pub fn clear() -> LimitsChange {
        LimitsChange {
            concurrency: Some(None),
            rate: Some(None),
        }
    }

    /// `limits` with this change made.
    pub fn apply(&self, mut limits: QueueLimits) -> QueueLimits {
        if let Some(c) = self.concurrency {
            limits.concurrency = c;
        }
        if let Some(r) = self.rate {
            limits.rate = r;
        }
        limits
    }
}

impl fmt::Display for QueueLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.concurrency {
            parts.push(format!("concurrency {n}"));
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate {rate}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}
