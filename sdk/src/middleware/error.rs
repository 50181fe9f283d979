use std::fmt;

use crate::{
    box_error::BoxError,
    error_chain,
    transport::{BodyTooLarge, TransportError},
};

/// An error raised by user middleware, not by the service: it is not retried, not counted by
/// the circuit breaker, not charged to the instance, and reaches the caller as
/// [`ServiceError::Middleware`](crate::ServiceError::Middleware).
///
/// An error the transport raised and the middleware passed on (even wrapped) stays a
/// transport error.
#[derive(Debug)]
pub struct MiddlewareError {
    source: BoxError,
}

impl MiddlewareError {
    /// Marks `err` as the middleware's own, unless it came from the transport below.
    pub(crate) fn wrap(err: BoxError) -> BoxError {
        let inner = err.as_ref();
        if error_chain::contains::<TransportError>(inner)
            || error_chain::contains::<BodyTooLarge>(inner)
            || error_chain::contains::<MiddlewareError>(inner)
        {
            return err;
        }
        Box::new(MiddlewareError { source: err })
    }

    /// The middleware's error.
    pub(crate) fn into_source(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for MiddlewareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "middleware failed: {}", self.source)
    }
}

impl std::error::Error for MiddlewareError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}
