//! What an attempt's answer or error says, decided once, here, and read by every layer and
//! crate that acts on it, as linkerd2-proxy's `http/classify` does: the retry policy, the
//! circuit breaker, the balancer's estimates and ejections, the hedge, the cache, the
//! metrics' outcome, the mapping to [`ServiceError`](crate::ServiceError) and its
//! [`retry`](crate::ServiceError::retry) answer, the event bus's dispatcher, the messaging
//! consumer and the gateway. Each keeps its own *policy* (what it retries, what it counts);
//! none of them decides on its own what an answer or an error *is*.
//!
//! The class is found once per attempt, where the attempt ends, and carried on with what it
//! judges: an answer's in [`ServiceResponse::class`](crate::ServiceResponse::class), an
//! error's in the attempt's error, which [`ErrorClass::of`] hands back without reading the
//! cause chain again. The classes themselves and their table are a leaf module of their own
//! (`class.rs`), re-exported here, so the response and the error can hold them.
//!
//! Two questions every reader asks have one answer each:
//!
//! - [`Fault`]: whose failure it was. Only [`Fault::Service`] and [`Fault::Network`] count
//!   against a service; nothing the caller did wrong ([`Fault::Caller`]) ever does.
//! - [`Retry`]: whether to try again [`Now`](Retry::Now) (another attempt of this call),
//!   only [`Later`](Retry::Later) (a redelivery, a new call, after a wait), or
//!   [`Never`](Retry::Never).

mod call_outcome;
mod service_error;

use std::error::Error as StdError;

pub use self::call_outcome::CallOutcome;
pub(crate) use self::call_outcome::OUTCOMES;
pub use crate::class::{Classify, ErrorClass, Fault, Retry, StatusClass};
use crate::{
    error::{AttemptError, CircuitOpen, DeadlineExceeded, NoInstances},
    error_chain,
    middleware::MiddlewareError,
    timeout::AttemptTimeout,
    transport::{BodyTooLarge, RequestBodyError, TransportError},
};

impl ErrorClass {
    /// Classifies `err` by the first thing its chain says, most specific first. An
    /// attempt's error carries the class found when the attempt ended, so the chain under
    /// it is read once per attempt, however many layers ask.
    pub fn of(err: &(dyn StdError + 'static)) -> ErrorClass {
        let mut transport = None;
        for e in error_chain::iter(err) {
            if let Some(attempt) = e.downcast_ref::<AttemptError>() {
                return attempt.class();
            } else if e.is::<MiddlewareError>() {
                return ErrorClass::Middleware;
            } else if e.is::<RequestBodyError>() {
                return ErrorClass::Caller;
            } else if e.is::<CircuitOpen>() {
                return ErrorClass::CircuitOpen;
            } else if e.is::<NoInstances>() {
                return ErrorClass::NoInstance;
            } else if e.is::<sdk_base::https::AddressRefused>() {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AttemptError, BoxError};

    /// An attempt's error carries the class found when the attempt ended: every later
    /// reader gets that one, without reading the chain under it again.
    #[test]
    fn an_attempts_error_carries_its_class() {
        let connect: BoxError = Box::new(TransportError::new(true, "refused"));
        let carried: BoxError = Box::new(AttemptError::new(
            "http://a".into(),
            connect,
            ErrorClass::AttemptTimeout,
        ));
        assert_eq!(ErrorClass::of(carried.as_ref()), ErrorClass::AttemptTimeout);
        let response = crate::response::ServiceResponse::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            Default::default(),
            Default::default(),
        );
        assert_eq!(response.class(), StatusClass::Unavailable);
    }

    #[test]
    fn the_most_specific_kind_wins_wherever_it_sits() {
        let connect: BoxError = Box::new(TransportError::new(true, "refused"));
        assert_eq!(ErrorClass::of(connect.as_ref()), ErrorClass::Connect);
        let class = ErrorClass::of(connect.as_ref());
        let wrapped: BoxError = Box::new(AttemptError::new("http://a".into(), connect, class));
        assert_eq!(ErrorClass::of(wrapped.as_ref()), ErrorClass::Connect);
        let mine = MiddlewareError::wrap("no key".into());
        assert_eq!(ErrorClass::of(mine.as_ref()), ErrorClass::Middleware);
        let unknown: BoxError = "something else".into();
        assert_eq!(ErrorClass::of(unknown.as_ref()), ErrorClass::Transport);
        assert!(!ErrorClass::Middleware.is_service_failure());
        assert!(ErrorClass::Certificate.is_service_failure());
        assert!(!ErrorClass::Certificate.retry().now());
        let caller: BoxError = Box::new(TransportError::new(
            false,
            RequestBodyError::Broke("client went away".into()),
        ));
        let class = ErrorClass::of(caller.as_ref());
        let caller: BoxError = Box::new(AttemptError::new("http://a".into(), caller, class));
        assert_eq!(ErrorClass::of(caller.as_ref()), ErrorClass::Caller);
        assert!(!ErrorClass::Caller.is_service_failure());
        assert!(!ErrorClass::Caller.retry().now());
    }

    /// Every consumer of an answer's status reads the one class: for every status from
    /// 100 to 599, the breaker's default classifier, the cache's error rule, the retry
    /// policy's default statuses, the metrics' outcome and `ServiceError`'s answers agree
    /// with `StatusClass`.
    #[test]
    fn every_reader_of_a_status_reads_its_class() {
        use crate::{
            circuit_breaker::{FailureClassifier as _, ServerFailures},
            response::ServiceResponse,
            settings::{CacheConfig, RetryConfig},
        };
        let retry_now = RetryConfig::default().retry_statuses;
        for code in 100..600u16 {
            let Ok(status) = http::StatusCode::from_u16(code) else {
                continue;
            };
            let class = StatusClass::of(status);
            let counts = class.fault().counts_against_service();
            let answer = Ok(ServiceResponse::new(
                status,
                Default::default(),
                Default::default(),
            ));
            assert_eq!(
                ServerFailures.is_failure(&answer),
                counts,
                "breaker, {status}"
            );
            assert_eq!(
                CacheConfig::new().error_statuses([status]).check().is_ok(),
                class == StatusClass::Refused,
                "cache, {status}"
            );
            assert_eq!(
                retry_now.contains(&status),
                class.retry().now(),
                "retry, {status}"
            );
            let outcome = CallOutcome::of_status(status);
            let expected = match class.fault() {
                Fault::None => CallOutcome::Success,
                Fault::Caller => CallOutcome::ClientError,
                _ => CallOutcome::ServerError,
            };
            assert_eq!(outcome, expected, "metrics, {status}");
            if class != StatusClass::Success {
                service_error_agrees(status, class);
            }
        }
        // The named answers of a few that matter.
        let of = |code: u16| StatusClass::of(http::StatusCode::from_u16(code).expect("valid"));
        assert_eq!(
            (of(404).fault(), of(404).retry()),
            (Fault::Caller, Retry::Never)
        );
        assert_eq!(
            (of(429).fault(), of(429).retry()),
            (Fault::Caller, Retry::Later)
        );
        assert_eq!(
            (of(408).fault(), of(408).retry()),
            (Fault::Caller, Retry::Later)
        );
        assert_eq!(
            (of(500).fault(), of(500).retry()),
            (Fault::Service, Retry::Later)
        );
        assert_eq!(
            (of(503).fault(), of(503).retry()),
            (Fault::Service, Retry::Now)
        );
        assert!(of(429).failed_to_serve() && of(500).failed_to_serve());
        assert!(!of(404).failed_to_serve() && !of(200).failed_to_serve());
    }

    /// A status error's `retry`, `is_retryable` and `fault` give its class's answers.
    fn service_error_agrees(status: http::StatusCode, class: StatusClass) {
        let error = crate::error::ServiceError::Status {
            context: Box::default(),
            status,
            headers: Box::default(),
            body: Default::default(),
        };
        assert_eq!(
            error.retry(),
            class.retry(),
            "ServiceError::retry, {status}"
        );
        assert_eq!(error.is_retryable(), class.retry().later(), "{status}");
        assert_eq!(
            error.fault(),
            class.fault(),
            "ServiceError::fault, {status}"
        );
    }

    /// An error's two answers: whose fault, and whether to retry now, later or never.
    #[test]
    fn each_error_class_says_whose_fault_and_when_to_retry() {
        use ErrorClass as E;
        let table = [
            (E::Middleware, Fault::Caller, Retry::Never),
            (E::Caller, Fault::Caller, Retry::Never),
            (E::BodyTooLarge, Fault::Caller, Retry::Never),
            (E::CircuitOpen, Fault::None, Retry::Later),
            (E::NoInstance, Fault::None, Retry::Later),
            (E::AddressRefused, Fault::None, Retry::Never),
            (E::Certificate, Fault::Service, Retry::Never),
            (E::Deadline, Fault::Service, Retry::Now),
            (E::AttemptTimeout, Fault::Service, Retry::Now),
            (E::Connect, Fault::Network, Retry::Now),
            (E::Transport, Fault::Network, Retry::Now),
        ];
        for (class, fault, retry) in table {
            assert_eq!((class.fault(), class.retry()), (fault, retry), "{class:?}");
            assert_eq!(class.is_service_failure(), fault.counts_against_service());
        }
    }
}
