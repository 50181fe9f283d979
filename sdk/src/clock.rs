//! Time arithmetic that cannot overflow or panic: deadlines from absurd durations, and
//! durations as the nanosecond counters the lock-free state (breaker, balancer, budget)
//! keeps.

use std::time::Duration;

use tokio::time::Instant;

/// `now + duration`, saturating far in the future instead of overflowing (a timeout or TTL of
/// `Duration::MAX`, or an absurd one in a configuration file, must not panic).
pub(crate) fn instant_after(now: Instant, duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(duration.min(FAR)).unwrap_or(now)
}

/// `duration` in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since `epoch`, saturating.
pub(crate) fn nanos_since(epoch: Instant) -> u64 {
    nanos(epoch.elapsed())
}
