//! One method's own retry settings (`#[retry]` on a generated client's method, or
//! `RequestBuilder::retry_policy`), in place of the service's.

use std::time::Duration;

use sdk_base::backoff::{ExponentialBackoff, Jitter};

/// Retry settings for one method, overriding the service's.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetryOverride {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: ExponentialBackoff,
}

impl RetryOverride {
    /// `max_attempts` attempts, waiting `delay` growing by `multiplier` (capped at 30 s),
    /// with full jitter.
    pub const fn new(max_attempts: u32, delay: Duration, multiplier: f64) -> Self {
        RetryOverride {
            max_attempts,
            backoff: ExponentialBackoff::new(delay, Duration::from_secs(30))
                .multiplier(multiplier)
                .jitter(Jitter::Full),
        }
    }
}
