//! A finished call's [`ServiceError`] read through the same classes: its
//! [`retry`](ServiceError::retry) and [`fault`](ServiceError::fault) answers.

use super::{ErrorClass, Fault, Retry, StatusClass};
use crate::error::{ServiceError, TimeoutKind};

/// A finished call's class: an answer's, an error's, or one of the failures no attempt made.
enum Classified {
    Answer(StatusClass),
    Error(ErrorClass),
    Other(Fault, Retry),
}

impl ServiceError {
    /// Whether trying the same call again *later* could succeed (a message redelivered, a
    /// job run again): timeouts, transport failures, an open breaker, no instance,
    /// 408/429/5xx. Client mistakes (4xx, decode, invalid request, body too large, a broken
    /// request body) are not, and neither is an instance's certificate refused: it will
    /// be refused again until someone changes it.
    ///
    /// The pipeline's own retries ask a different question, "may another attempt *now*
    /// fare differently", where an open breaker or no instance says no: they are decided
    /// inside the pipeline, once, before this error is made.
    pub fn is_retryable(&self) -> bool {
        self.retry().later()
    }

    /// Whether trying again could succeed, and when: the class of the last attempt's
    /// answer or error ([`outcome`](crate::outcome)), the one table every reader shares.
    pub fn retry(&self) -> Retry {
        match self.class() {
            Classified::Answer(class) => class.retry(),
            Classified::Error(class) => class.retry(),
            Classified::Other(_, retry) => retry,
        }
    }

    /// Whose failure this is: only [`Fault::Service`] and [`Fault::Network`] count against
    /// the service; a 4xx, the caller's own middleware or body, a decode failure of the
    /// caller's type and a cancelled call never do.
    pub fn fault(&self) -> Fault {
        match self.class() {
            Classified::Answer(class) => class.fault(),
            Classified::Error(class) => class.fault(),
            Classified::Other(fault, _) => fault,
        }
    }

    /// The last attempt's class.
    fn class(&self) -> Classified {
        match self.last_attempt() {
            ServiceError::Status {
                status, context, ..
            } => Classified::Answer(context.class.unwrap_or_else(|| StatusClass::of(*status))),
            ServiceError::Transport {
                source, connect, ..
            } => Classified::Error(
                if crate::error_chain::is_certificate_failure(source.as_ref()) {
                    ErrorClass::Certificate
                } else if *connect {
                    ErrorClass::Connect
                } else {
                    ErrorClass::Transport
                },
            ),
            ServiceError::Timeout { kind, .. } => Classified::Error(match kind {
                TimeoutKind::Attempt => ErrorClass::AttemptTimeout,
                _ => ErrorClass::Deadline,
            }),
            ServiceError::CircuitOpen { .. } => Classified::Error(ErrorClass::CircuitOpen),
            ServiceError::NoHealthyInstance { .. } => Classified::Error(ErrorClass::NoInstance),
            ServiceError::Middleware { .. } => Classified::Error(ErrorClass::Middleware),
            ServiceError::RequestBody { .. } => Classified::Error(ErrorClass::Caller),
            ServiceError::BodyTooLarge { .. } => Classified::Error(ErrorClass::BodyTooLarge),
            // The answer did not read as the caller's type, the request could not be made,
            // or the caller gave up: the caller's side, and the same again next time.
            _ => Classified::Other(Fault::Caller, Retry::Never),
        }
    }
}
