//! Retry policies: how long a failed job waits before its next attempt.
//!
//! The worker asks its policy after every failed attempt; it never does backoff math itself.
//! Whether there *is* a next attempt is the job's `max_attempts` (decided atomically in Redis)
//! or the handler's [`JobError::kill`](crate::JobError::kill).

use rand::Rng;
use std::time::Duration;

/// Decides the wait before the next attempt of a failed job.
pub trait RetryPolicy: Send + Sync + 'static {
    /// The wait after failed attempt number `attempt` (1 for the first run).
    fn backoff(&self, attempt: u32) -> Duration;
}

/// Exponential backoff with jitter: `base * factor^(attempt-1)`, capped at `max`, then spread
/// over `[delay * (1 - jitter), delay]` so retries of many jobs that failed together do not
/// arrive together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialBackoff {
    /// The first wait. Default: 1 s.
    pub base: Duration,
    /// Growth per attempt. Default: 2.
    pub factor: f64,
    /// The longest wait. Default: 1 hour.
    pub max: Duration,
    /// Fraction of the wait that is random, 0 to 1. Default: 0.5.
    pub jitter: f64,
}

impl Default for ExponentialBackoff {
    fn default() -> ExponentialBackoff {
        ExponentialBackoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy for ExponentialBackoff {
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        let full = (self.base.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = if jitter > 0.0 {
            rand::rng().random_range(0.0..=jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64(full * (1.0 - spread))
    }
}

/// The same wait after every failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedBackoff(pub Duration);

impl RetryPolicy for FixedBackoff {
    fn backoff(&self, _attempt: u32) -> Duration {
        self.0
    }
}

/// Any `Fn(attempt) -> Duration` is a policy.
impl<F> RetryPolicy for F
where
    F: Fn(u32) -> Duration + Send + Sync + 'static,
{
    fn backoff(&self, attempt: u32) -> Duration {
        self(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_caps_and_jitters_within_bounds() {
        let p = ExponentialBackoff {
            jitter: 0.0,
            ..Default::default()
        };
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(4), Duration::from_secs(8));
        assert_eq!(p.backoff(40), Duration::from_secs(3600));
        let p = ExponentialBackoff::default();
        for _ in 0..100 {
            let d = p.backoff(3);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
    }

    #[test]
    fn fixed_and_closure_policies() {
        assert_eq!(
            FixedBackoff(Duration::from_millis(5)).backoff(9),
            Duration::from_millis(5)
        );
        let custom = |attempt: u32| Duration::from_millis(10 * attempt as u64);
        assert_eq!(custom.backoff(3), Duration::from_millis(30));
    }
}
