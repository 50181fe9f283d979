use std::{fmt, sync::Arc};

use crate::error::BoxError;

/// The service has no instance to send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoInstances;

impl fmt::Display for NoInstances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no instance available")
    }
}

impl std::error::Error for NoInstances {}

/// An attempt failed at a particular instance.
#[derive(Debug)]
pub struct AttemptError {
    instance: Arc<str>,
    source: BoxError,
}

impl AttemptError {
    pub(crate) fn new(instance: Arc<str>, source: BoxError) -> Self {
        AttemptError { instance, source }
    }

    /// The attempt's error.
    pub(crate) fn into_source(self) -> BoxError {
        self.source
    }

    /// The instance the attempt went to.
    pub fn instance(&self) -> &Arc<str> {
        &self.instance
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt at {} failed: {}", self.instance, self.source)
    }
}

impl std::error::Error for AttemptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}
