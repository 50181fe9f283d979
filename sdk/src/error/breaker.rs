//! The error an open breaker answers with.

use std::{fmt, time::Duration};

/// The circuit is open: the call was refused without any network I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    /// How long until the breaker admits a probe (zero while half-open probes are busy).
    pub retry_after: Duration,
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker is open; next probe in {:?}",
            self.retry_after
        )
    }
}

impl std::error::Error for CircuitOpen {}
