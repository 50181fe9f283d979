//! What an attempt's answer or error says, decided once, here, and read by every layer and
//! crate that acts on it, as linkerd2-proxy's `http/classify` does: the retry policy, the
//! circuit breaker, the balancer's estimates and ejections, the hedge, the cache, the
//! metrics' outcome, the mapping to [`ServiceError`](crate::ServiceError) and its
//! [`retry`](crate::ServiceError::retry) answer, the event bus's dispatcher, the messaging
//! consumer and the gateway. Each keeps its own *policy* (what it retries, what it counts);
//! none of them decides on its own what an answer or an error *is*.
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
use crate::{
    error::{CircuitOpen, DeadlineExceeded, NoInstances},
    error_chain,
    middleware::MiddlewareError,
    timeout::AttemptTimeout,
    transport::{BodyTooLarge, RequestBodyError, TransportError},
};

/// Whose failure an answer or error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// No one's: it succeeded, or nothing was sent (an open breaker, no instance).
    None,
    /// The caller's own: its request was refused as it was (a 4xx), its middleware or its
    /// request body failed, or the answer exceeded its limit. Never counts against a service.
    Caller,
    /// The service's: a 5xx, a timeout, a refused certificate.
    Service,
    /// The network's, between caller and service: no connection, or one that broke.
    Network,
}

impl Fault {
    /// Whether the failure counts against the service (its breaker, its instance's health).
    pub fn counts_against_service(self) -> bool {
        matches!(self, Fault::Service | Fault::Network)
    }
}

/// Whether trying again could succeed, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Retry {
    /// Trying again will meet the same answer (a lasting 4xx, a refused certificate, the
    /// caller's own failure).
    Never,
    /// Not another attempt now, but later it may succeed: an open breaker, no instance, a
    /// 429 or 408, a 500 (often a bug that a new deployment fixes).
    Later,
    /// Another attempt now may fare differently (whether it is *allowed*, by idempotency,
    /// is the retry policy's call): no connection, a broken one, a timeout, 502/503/504.
    Now,
}

impl Retry {
    /// Whether a later try could succeed (`Now` implies `Later`).
    pub fn later(self) -> bool {
        self != Retry::Never
    }

    /// Whether another attempt now could.
    pub fn now(self) -> bool {
        self == Retry::Now
    }
}

/// What an answer's status says.
///
/// ```
/// use sdk::outcome::{Fault, Retry, StatusClass};
///
/// let busy = StatusClass::of(http::StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!((busy.fault(), busy.retry()), (Fault::Caller, Retry::Later));
/// assert!(StatusClass::of(http::StatusCode::BAD_GATEWAY).retry().now());
/// assert!(!StatusClass::of(http::StatusCode::NOT_FOUND).fault().counts_against_service());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusClass {
    /// 1xx, 2xx or 3xx: served.
    Success,
    /// A 4xx other than 408 and 429: this request is refused, and would be again.
    Refused,
    /// 408: the service gave up waiting for the request (the caller was too slow to send it).
    RequestTimeout,
    /// 429: the caller is asked to slow down.
    TooManyRequests,
    /// 502, 503 or 504: the service (or a proxy before it) could not serve it now.
    Unavailable,
    /// Any other 5xx: the service failed serving it.
    ServerError,
}

impl StatusClass {
    /// The class of `status`.
    pub fn of(status: http::StatusCode) -> Self {
        use http::StatusCode as S;
        match status {
            S::REQUEST_TIMEOUT => StatusClass::RequestTimeout,
            S::TOO_MANY_REQUESTS => StatusClass::TooManyRequests,
            s if Self::RETRY_NOW.contains(&s) => StatusClass::Unavailable,
            s if s.is_server_error() => StatusClass::ServerError,
            s if s.is_client_error() => StatusClass::Refused,
            _ => StatusClass::Success,
        }
    }

    /// Whose failure the answer is: a 4xx is the caller's, a 5xx the service's.
    pub fn fault(self) -> Fault {
        match self {
            StatusClass::Success => Fault::None,
            StatusClass::Refused | StatusClass::RequestTimeout | StatusClass::TooManyRequests => {
                Fault::Caller
            }
            StatusClass::Unavailable | StatusClass::ServerError => Fault::Service,
        }
    }

    /// Whether asking again could succeed: at once after 502/503/504; later after a 429
    /// (at once only when it said when, which is the retry policy's to read), a 408 or
    /// another 5xx; never after another 4xx.
    pub fn retry(self) -> Retry {
        match self {
            StatusClass::Success | StatusClass::Refused => Retry::Never,
            StatusClass::RequestTimeout
            | StatusClass::TooManyRequests
            | StatusClass::ServerError => Retry::Later,
            StatusClass::Unavailable => Retry::Now,
        }
    }

    /// Whether the instance failed to serve the request (a 5xx) or shed it (429): the
    /// balancer charges such an answer as slow, and a hedge does not take it as the winner.
    pub fn failed_to_serve(self) -> bool {
        self.fault() == Fault::Service || self == StatusClass::TooManyRequests
    }

    /// 502, 503 and 504: the [`Unavailable`](Self::Unavailable) statuses, the only ones
    /// whose class says [`Retry::Now`], and so the retry policy's default statuses.
    pub const RETRY_NOW: [http::StatusCode; 3] = [
        http::StatusCode::BAD_GATEWAY,
        http::StatusCode::SERVICE_UNAVAILABLE,
        http::StatusCode::GATEWAY_TIMEOUT,
    ];
}

/// The kind of an attempt's or a call's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
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
    pub fn of(err: &(dyn StdError + 'static)) -> ErrorClass {
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

    /// Whose failure the error is.
    pub fn fault(self) -> Fault {
        match self {
            ErrorClass::Middleware | ErrorClass::Caller | ErrorClass::BodyTooLarge => Fault::Caller,
            ErrorClass::CircuitOpen | ErrorClass::NoInstance | ErrorClass::AddressRefused => {
                Fault::None
            }
            ErrorClass::Deadline | ErrorClass::AttemptTimeout | ErrorClass::Certificate => {
                Fault::Service
            }
            ErrorClass::Connect | ErrorClass::Transport => Fault::Network,
        }
    }

    /// Whether trying again could succeed: at once after a timeout or a connection that
    /// failed or broke; later after an open breaker or no instance; never after the
    /// caller's own failure, a refused address or a refused certificate (it will be
    /// refused again until someone changes it).
    pub fn retry(self) -> Retry {
        match self {
            ErrorClass::Deadline
            | ErrorClass::AttemptTimeout
            | ErrorClass::Connect
            | ErrorClass::Transport => Retry::Now,
            ErrorClass::CircuitOpen | ErrorClass::NoInstance => Retry::Later,
            ErrorClass::Middleware
            | ErrorClass::Caller
            | ErrorClass::BodyTooLarge
            | ErrorClass::AddressRefused
            | ErrorClass::Certificate => Retry::Never,
        }
    }

    /// Whether the error says the service (or the instance) is failing: the breaker counts
    /// it and the balancer charges it.
    pub(crate) fn is_service_failure(self) -> bool {
        self.fault().counts_against_service()
    }

    /// Whether the caller's own side failed before anything was learned of the instance
    /// (its middleware, its request body): not even its latency is charged, and a
    /// breaker's permit is given back unused. (An oversized answer is the caller's limit
    /// too, but the instance did answer.)
    pub(crate) fn is_callers_own(self) -> bool {
        matches!(self, ErrorClass::Middleware | ErrorClass::Caller)
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
        assert!(!ErrorClass::Certificate.retry().now());
        let caller: BoxError = Box::new(TransportError::new(
            false,
            RequestBodyError::Broke("client went away".into()),
        ));
        let caller: BoxError = Box::new(AttemptError::new("http://a".into(), caller));
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
