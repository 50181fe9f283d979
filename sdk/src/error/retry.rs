//! The error the retry layer returns when it gives up on a failing call.

use std::fmt;

use crate::box_error::BoxError;

/// Retrying stopped; `source` is the last attempt's error.
#[derive(Debug)]
pub struct RetriesExhausted {
    /// How many attempts were made.
    pub attempts: u32,
    /// Why retrying stopped.
    pub stop: RetryStop,
    source: BoxError,
}

impl RetriesExhausted {
    pub(crate) fn new(attempts: u32, stop: RetryStop, source: BoxError) -> Self {
        RetriesExhausted {
            attempts,
            stop,
            source,
        }
    }
}

impl RetriesExhausted {
    /// The last attempt's error.
    pub(crate) fn into_source(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for RetriesExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} attempts", self.stop, self.attempts)
    }
}

impl std::error::Error for RetriesExhausted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Why the retry layer stopped retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryStop {
    /// Every configured attempt was used.
    AttemptsExhausted,
    /// The service's retry budget had no tokens left (an outage is not multiplied).
    BudgetExhausted,
    /// The next backoff would have passed the call's deadline.
    DeadlineReached,
    /// The server's `Retry-After` asked for a longer wait than `max_retry_after`.
    RetryAfterTooLong,
}

impl fmt::Display for RetryStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetryStop::AttemptsExhausted => "all attempts used",
            RetryStop::BudgetExhausted => "retry budget exhausted",
            RetryStop::DeadlineReached => "deadline reached before the next attempt",
            RetryStop::RetryAfterTooLong => "Retry-After longer than max_retry_after",
        })
    }
}
