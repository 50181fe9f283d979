//! The classes an attempt's answer or error falls in, and their two answers: whose fault
//! ([`Fault`]) and whether to try again now, later or never ([`Retry`]). A leaf: the data and
//! its table, with nothing of the pipeline, so the response and the attempt's error can each
//! carry their class ([`ServiceResponse::class`](crate::ServiceResponse::class),
//! `AttemptError`). Where an error's class is *found* (its cause chain read once) is
//! [`outcome`](crate::outcome), which re-exports all of this.

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

/// The one replaceable classification: turns an answer into its class, once per attempt,
/// where the attempt ends. Every reader then follows the class it gave: the circuit
/// breaker's default rule, the balancer's failure streak and latency penalty, the hedge,
/// the cache's stale-if-error, the metrics' outcome and the error's
/// [`fault`](crate::ServiceError::fault) and [`retry`](crate::ServiceError::retry). (The
/// retry policy's status list is a policy of its own: it names the statuses it retries.)
///
/// The default is [`StatusClass::of`]. Set one with
/// [`ServiceSdkBuilder::classify`](crate::ServiceSdkBuilder::classify), for a fleet whose
/// services speak differently: here a router that answers 404 while an instance deploys.
///
/// ```
/// use sdk::outcome::{Classify, StatusClass};
///
/// #[derive(Debug)]
/// struct DeployingIs404;
///
/// impl Classify for DeployingIs404 {
///     fn classify(&self, status: http::StatusCode, headers: &http::HeaderMap) -> StatusClass {
///         match status {
///             http::StatusCode::NOT_FOUND if headers.contains_key("x-deploying") => {
///                 StatusClass::Unavailable
///             }
///             status => StatusClass::of(status),
///         }
///     }
/// }
/// ```
pub trait Classify: std::fmt::Debug + Send + Sync + 'static {
    /// The class of an answer with `status` and `headers`.
    fn classify(&self, status: http::StatusCode, headers: &http::HeaderMap) -> StatusClass;
}
