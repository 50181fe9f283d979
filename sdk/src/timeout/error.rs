//! The error an attempt that ran past its `attempt_timeout` fails with.

use std::{fmt, time::Duration};

/// One attempt took longer than the service's `attempt_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptTimeout {
    /// The attempt timeout.
    pub limit: Duration,
}

impl fmt::Display for AttemptTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timed out after {:?}", self.limit)
    }
}

impl std::error::Error for AttemptTimeout {}
