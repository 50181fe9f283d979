//! The error the retry layer returns when it gives up on a failing call.

use std::fmt;

use crate::error::{BoxError, RetryStop};

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
