//! The per-attempt timeout, and how it meets the call's deadline.
//!
//! Each attempt gets one timer, at the earlier of `attempt_timeout` (when configured) and the
//! call's deadline (`attempt_bound`). The balancer's response future applies it, because
//! only there are the attempt and the request's deadline both known; a separate tower layer
//! would need a second timer or a per-request allocation to learn the deadline.

mod error;

use std::time::Duration;

use tokio::time::Instant;

pub use self::error::AttemptTimeout;
use crate::error::DeadlineExceeded;

/// Which limit bounds an attempt.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound {
    Attempt(Duration),
    Deadline(Duration),
}

impl Bound {
    /// The error for an attempt that ran out of time under this bound.
    pub(crate) fn error(self) -> crate::BoxError {
        match self {
            Bound::Attempt(limit) => Box::new(AttemptTimeout { limit }),
            Bound::Deadline(limit) => Box::new(DeadlineExceeded { limit }),
        }
    }
}

/// When the attempt starting `now` must end, and why; `None` when nothing bounds it.
pub(crate) fn attempt_bound(
    now: Instant,
    attempt_timeout: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
) -> Option<(Instant, Bound)> {
    let attempt = attempt_timeout.map(|t| (crate::clock::instant_after(now, t), Bound::Attempt(t)));
    let call = deadline.map(|(at, limit)| (at, Bound::Deadline(limit)));
    match (attempt, call) {
        (Some(a), Some(c)) => Some(if a.0 < c.0 { a } else { c }),
        (a, c) => a.or(c),
    }
}
