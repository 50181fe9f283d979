//! The error a call whose deadline passed fails with.

use std::{fmt, time::Duration};

/// The call's deadline passed before it finished (retries included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadlineExceeded {
    /// The deadline the call had.
    pub limit: Duration,
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {:?} exceeded", self.limit)
    }
}

impl std::error::Error for DeadlineExceeded {}
