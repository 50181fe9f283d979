//! What kind of failure an error is: decided once, here, and read by every layer that acts
//! on it (the retry policy, the circuit breaker, the balancer's estimates and ejections, and
//! the mapping to [`ServiceError`](crate::ServiceError)), as linkerd2-proxy's
//! `http/classify` does. Each layer keeps its own policy (what it retries, what it counts);
//! none of them decides on its own what an error *is*.

use std::error::Error as StdError;

use crate::{
    deadline::DeadlineExceeded,
    error::{CircuitOpen, NoInstances},
    error_chain,
    middleware::MiddlewareError,
    timeout::AttemptTimeout,
    transport::{BodyTooLarge, RequestBodyError, TransportError},
};

/// Whether an instance's answer says it failed to serve (a 5xx) or is overloaded (429):
/// the balancer charges such an answer as slow, and a hedge does not take it as the
/// winner.
pub(crate) fn answer_failed(status: http::StatusCode) -> bool {
    status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS
}

/// The kind of an attempt's or a call's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The caller's own middleware failed: nothing was learned of the service.
    Middleware,
    /// The caller's own request body broke off or stalled (a gateway's client went away
    /// mid-upload): nothing was learned of the service.
    Caller,
    /// Refused by an open breaker; nothing was sent.
    CircuitOpen,
    /// The service has no instance to send to; nothing was sent.
    NoInstance,
    /// The transport's address policy refused the instance's address (an internal one, for
    /// a server calling its tenants' URLs); nothing was sent.
    AddressRefused,
    /// The answer was larger than allowed (the service answered; the caller's limit).
    BodyTooLarge,
    /// The call's deadline passed.
    Deadline,
    /// One attempt took longer than the attempt timeout.
    AttemptTimeout,
    /// The instance's TLS certificate was refused: another attempt would meet it again.
    Certificate,
    /// The connection could not be made: nothing was sent.
    Connect,
    /// The connection broke after the request may have been sent, or an error this crate
    /// does not know (a custom transport's): treated as the service failing.
    Transport,
}

impl ErrorClass {
    /// Classifies `err` by the first thing its chain says, most specific first.
    pub(crate) fn of(err: &(dyn StdError + 'static)) -> ErrorClass {
        let mut transport = None;
        for e in error_chain::iter(err) {
            if e.is::<MiddlewareError>() {
                return ErrorClass::Middleware;
            } else if e.is::<RequestBodyError>() {
                return ErrorClass::Caller;
            } else if e.is::<CircuitOpen>() {
                return ErrorClass::CircuitOpen;
            } else if e.is::<NoInstances>() {
                return ErrorClass::NoInstance;
            } else if e.is::<sdk_registry::AddressRefused>() {
                return ErrorClass::AddressRefused;
            } else if e.is::<BodyTooLarge>() {
                return ErrorClass::BodyTooLarge;
            } else if e.is::<DeadlineExceeded>() {
                return ErrorClass::Deadline;
            } else if e.is::<AttemptTimeout>() {
                return ErrorClass::AttemptTimeout;
            } else if let Some(t) = e.downcast_ref::<TransportError>() {
                transport.get_or_insert(t.is_connect());
            }
        }
        if error_chain::is_certificate_failure(err) {
            return ErrorClass::Certificate;
        }
        match transport {
            Some(true) => ErrorClass::Connect,
            _ => ErrorClass::Transport,
        }
    }

    /// Whether the error says the service (or the instance) is failing: the breaker counts
    /// it and the balancer charges it. A failure on the caller's side (its middleware, its
    /// request body), an open breaker, no instance and an oversized answer say nothing
    /// against the service.
    pub(crate) fn is_service_failure(self) -> bool {
        !self.says_nothing_of_the_service()
    }

    /// Whether the caller's own side failed (its middleware, its request body): the attempt
    /// taught nothing of the instance, not even its latency, and a breaker's permit is given
    /// back unused.
    pub(crate) fn is_callers_own(self) -> bool {
        matches!(self, ErrorClass::Middleware | ErrorClass::Caller)
    }

    /// The caller's side, an open breaker, no instance, an oversized answer: the service's
    /// health is not in question.
    fn says_nothing_of_the_service(self) -> bool {
        self.is_callers_own()
            || matches!(
                self,
                ErrorClass::CircuitOpen
                    | ErrorClass::NoInstance
                    | ErrorClass::AddressRefused
                    | ErrorClass::BodyTooLarge
            )
    }

    /// Whether another attempt *now* could fare differently at all (whether it is
    /// *allowed*, by idempotency, is the retry policy's call). The pipeline's retry asks
    /// this; whether a later try could succeed (a redelivery, a new call) is
    /// [`ServiceError::is_retryable`](crate::ServiceError::is_retryable)'s question.
    pub(crate) fn may_retry_now(self) -> bool {
        !(self.says_nothing_of_the_service() || self == ErrorClass::Certificate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AttemptError, BoxError};

    #[test]
    fn the_most_specific_kind_wins_wherever_it_sits() {
        let connect: BoxError = Box::new(TransportError::new(true, "refused"));
        assert_eq!(ErrorClass::of(connect.as_ref()), ErrorClass::Connect);
        let wrapped: BoxError = Box::new(AttemptError::new("http://a".into(), connect));
        assert_eq!(ErrorClass::of(wrapped.as_ref()), ErrorClass::Connect);
        let mine = MiddlewareError::wrap("no key".into());
        assert_eq!(ErrorClass::of(mine.as_ref()), ErrorClass::Middleware);
        let unknown: BoxError = "something else".into();
        assert_eq!(ErrorClass::of(unknown.as_ref()), ErrorClass::Transport);
        assert!(!ErrorClass::Middleware.is_service_failure());
        assert!(ErrorClass::Certificate.is_service_failure());
        assert!(!ErrorClass::Certificate.may_retry_now());
        let caller: BoxError = Box::new(TransportError::new(
            false,
            RequestBodyError::Broke("client went away".into()),
        ));
        let caller: BoxError = Box::new(AttemptError::new("http://a".into(), caller));
        assert_eq!(ErrorClass::of(caller.as_ref()), ErrorClass::Caller);
        assert!(!ErrorClass::Caller.is_service_failure());
        assert!(!ErrorClass::Caller.may_retry_now());
    }
}
