//! [`ServiceError`]: one error type that says what went wrong in a way a caller can act on.
//!
//! Inside the pipeline each middleware fails with a small named error of its own
//! ([`CircuitOpen`](crate::circuit_breaker::CircuitOpen),
//! [`DeadlineExceeded`](crate::deadline::DeadlineExceeded), ...), boxed as a [`BoxError`] the
//! way tower does. They are mapped to a [`ServiceError`] once, at the client boundary, by
//! [`ServiceError::from_pipeline`].

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

mod balance;
mod breaker;
mod deadline;

mod retry;

pub use self::{
    balance::{AttemptError, NoInstanceReason, NoInstances},
    breaker::CircuitOpen,
    deadline::DeadlineExceeded,
    retry::{RetriesExhausted, RetryStop},
};
pub use crate::box_error::BoxError;
use crate::class::StatusClass;

/// The result of every SDK call.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// The endpoint a call was for: method and path template (or literal path for ad-hoc calls),
/// displayed as `GET /orders/{id}`; for a message, its verb and pattern (`SEND user.create`).
///
/// An HTTP call's endpoint shares the request's parts rather than copying them, so building
/// an error costs no allocation for it; only the method and endpoint are ever printed.
#[derive(Clone, Default)]
pub struct Endpoint(EndpointOf);

#[derive(Clone, Default)]
enum EndpointOf {
    #[default]
    Unknown,
    Shared(Arc<dyn EndpointSource>),
    Named(Method, Arc<str>),
}

/// What an HTTP call's [`Endpoint`] reads its method and name from: the request's shared
/// parts (`request` implements it), so an error holds them without copying and this
/// module needs nothing from the pipeline above it.
pub(crate) trait EndpointSource: Send + Sync {
    fn method(&self) -> &Method;
    fn name(&self) -> &str;
}

impl Endpoint {
    /// The endpoint `source` names, shared.
    pub(crate) fn shared(source: Arc<dyn EndpointSource>) -> Self {
        Endpoint(EndpointOf::Shared(source))
    }

    /// An endpoint that is not an HTTP request: a verb and a name, e.g. a message pattern
    /// (`Endpoint::named(Method::from_bytes(b"SEND")?, "user.create")`).
    ///
    /// ```
    /// use sdk::{http::Method, Endpoint};
    ///
    /// let send = Method::from_bytes(b"SEND").expect("a token");
    /// assert_eq!(Endpoint::named(send, "user.create").to_string(), "SEND user.create");
    /// ```
    pub fn named(verb: Method, name: impl Into<Arc<str>>) -> Self {
        Endpoint(EndpointOf::Named(verb, name.into()))
    }

    /// The HTTP method (or the message verb), when known.
    pub fn method(&self) -> Option<&Method> {
        match &self.0 {
            EndpointOf::Unknown => None,
            EndpointOf::Shared(source) => Some(source.method()),
            EndpointOf::Named(verb, _) => Some(verb),
        }
    }

    /// The endpoint name without the method (`/orders/{id}`, `user.create`), empty when
    /// unknown.
    pub fn name(&self) -> &str {
        match &self.0 {
            EndpointOf::Unknown => "",
            EndpointOf::Shared(source) => source.name(),
            EndpointOf::Named(_, name) => name,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.method() {
            Some(method) => write!(f, "{method} {}", self.name()),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.method() == other.method() && self.name() == other.name()
    }
}

impl Eq for Endpoint {}

impl PartialEq<str> for Endpoint {
    fn eq(&self, other: &str) -> bool {
        match (self.method(), other.split_once(' ')) {
            (Some(method), Some((m, name))) => method.as_str() == m && self.name() == name,
            (None, _) => other.is_empty(),
            _ => false,
        }
    }
}

impl PartialEq<&str> for Endpoint {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// Where a failure happened: service, endpoint, instance and how many attempts were made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorContext {
    /// The logical service name, e.g. `order-service`.
    pub service: Arc<str>,
    /// The endpoint: method and path template (or literal path for ad-hoc calls).
    pub endpoint: Endpoint,
    /// The instance (`scheme://host:port`) the last attempt went to, when one was chosen.
    pub instance: Option<Arc<str>>,
    /// How many attempts were made (0 when the call never reached the network).
    pub attempts: u32,
    /// For an answer's error ([`ServiceError::Status`]), the class the answer was given
    /// where the attempt ended ([`Classify`](crate::outcome::Classify)); when `None`, the
    /// status's own ([`StatusClass::of`]).
    pub class: Option<StatusClass>,
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.endpoint)?;
        if let Some(instance) = &self.instance {
            write!(f, " at {instance}")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

/// Which clock ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    /// One attempt took longer than the service's `attempt_timeout`.
    Attempt,
    /// The whole call, across retries, took longer than its deadline.
    Deadline,
}

/// Everything that can go wrong with a call, in terms a caller can act on.
///
/// Use the predicates rather than matching deeply: [`status_code`](Self::status_code),
/// [`is_timeout`](Self::is_timeout), [`is_circuit_open`](Self::is_circuit_open) and
/// [`is_retryable`](Self::is_retryable) look through [`RetriesExhausted`](Self::RetriesExhausted)
/// to the last attempt's error.
///
/// ```
/// use sdk::ServiceError;
///
/// fn describe(err: &ServiceError) -> &'static str {
///     if err.is_circuit_open() {
///         "the service is failing; we are not calling it for now"
///     } else if err.is_timeout() {
///         "the service was too slow"
///     } else if err.status_code() == Some(http::StatusCode::NOT_FOUND) {
///         "no such thing"
///     } else {
///         "something else"
///     }
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The endpoint's circuit breaker is open; nothing was sent.
    #[error("{context}: circuit breaker is open (retry in {retry_after:?})")]
    CircuitOpen {
        /// Where.
        context: Box<ErrorContext>,
        /// How long until the breaker admits a probe.
        retry_after: Duration,
    },
    /// An attempt or the whole call ran out of time.
    #[error("{context}: timed out ({kind:?} timeout of {limit:?})")]
    Timeout {
        /// Where.
        context: Box<ErrorContext>,
        /// Which clock ran out.
        kind: TimeoutKind,
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// The service answered with a non-success status.
    #[error("{context}: HTTP {status}")]
    Status {
        /// Where.
        context: Box<ErrorContext>,
        /// The status code.
        status: StatusCode,
        /// The response headers (secret ones marked sensitive).
        headers: Box<HeaderMap>,
        /// The response body, cut to the SDK's `error_body_limit`.
        body: Bytes,
    },
    /// The connection could not be made or broke (DNS, refused, reset, TLS, protocol).
    #[error("{context}: transport error: {source}")]
    Transport {
        /// Where.
        context: Box<ErrorContext>,
        /// Whether the failure happened while connecting (so nothing was sent).
        connect: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The caller's own middleware (a layer given to the builder) failed. Not retried, not
    /// counted by the circuit breaker, not charged to the instance.
    #[error("{context}: {source}")]
    Middleware {
        /// Where.
        context: Box<ErrorContext>,
        /// The middleware's error.
        #[source]
        source: BoxError,
    },
    /// The request body the caller streamed failed on the caller's side: it broke off (the
    /// client went away mid-upload) or stalled. Not retried, not counted by the circuit
    /// breaker, not charged to the instance.
    #[error("{context}: {source}")]
    RequestBody {
        /// Where.
        context: Box<ErrorContext>,
        /// Whether it stalled (no bytes for too long) rather than broke off.
        stalled: bool,
        /// What happened, with its causes.
        #[source]
        source: BoxError,
    },
    /// The response body was not the JSON the caller asked for.
    #[error("{context}: could not decode the response body: {source}")]
    Decode {
        /// Where.
        context: Box<ErrorContext>,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The response body was larger than the configured limit.
    #[error("{context}: response body larger than the {limit}-byte limit")]
    BodyTooLarge {
        /// Where.
        context: Box<ErrorContext>,
        /// The limit in bytes.
        limit: usize,
    },
    /// The service has no instance to send to, and why: nothing registered, all unhealthy,
    /// the registry unreachable, or the registry refusing the credentials.
    #[error("{context}: no healthy instance of the service: {reason}")]
    NoHealthyInstance {
        /// Where.
        context: Box<ErrorContext>,
        /// Why.
        reason: NoInstanceReason,
    },
    /// The request was refused before anything was sent: a bad path, header or body.
    #[error("invalid request to {service}: {reason}")]
    InvalidRequest {
        /// The service the request was meant for.
        service: Arc<str>,
        /// What is wrong with it.
        reason: String,
    },
    /// The call was retried and every attempt failed; `last` is the final attempt's error.
    #[error("{stop} ({attempts} attempts): {last}")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// Why retrying stopped.
        stop: RetryStop,
        /// The last attempt's error.
        #[source]
        last: Box<ServiceError>,
    },
    /// The call was abandoned because a batch's overall deadline passed first.
    #[error("not completed before the batch deadline")]
    Cancelled,
}

impl ServiceError {
    /// The error of the last attempt (looks through [`RetriesExhausted`](Self::RetriesExhausted)).
    pub fn last_attempt(&self) -> &ServiceError {
        match self {
            ServiceError::RetriesExhausted { last, .. } => last.last_attempt(),
            other => other,
        }
    }

    /// The HTTP status, when the service answered with one.
    pub fn status_code(&self) -> Option<StatusCode> {
        match self.last_attempt() {
            ServiceError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The response body of a status error (size-limited).
    pub fn body(&self) -> Option<&Bytes> {
        match self.last_attempt() {
            ServiceError::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether an attempt or the whole call timed out, or the connection did (a connect
    /// timeout is a transport error with an I/O timeout in its causes).
    pub fn is_timeout(&self) -> bool {
        match self.last_attempt() {
            ServiceError::Timeout { .. } => true,
            ServiceError::Transport { source, .. } => {
                crate::error_chain::has_io_timeout(source.as_ref())
            }
            _ => false,
        }
    }

    /// Whether the call was refused by an open circuit breaker.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self.last_attempt(), ServiceError::CircuitOpen { .. })
    }

    /// The context (service, endpoint, instance, attempts) of this error, when it has one.
    pub fn context(&self) -> Option<&ErrorContext> {
        match self {
            ServiceError::CircuitOpen { context, .. }
            | ServiceError::Timeout { context, .. }
            | ServiceError::Status { context, .. }
            | ServiceError::Transport { context, .. }
            | ServiceError::Middleware { context, .. }
            | ServiceError::RequestBody { context, .. }
            | ServiceError::Decode { context, .. }
            | ServiceError::BodyTooLarge { context, .. }
            | ServiceError::NoHealthyInstance { context, .. } => Some(context),
            ServiceError::RetriesExhausted { last, .. } => last.context(),
            ServiceError::InvalidRequest { .. } | ServiceError::Cancelled => None,
        }
    }

    /// How many attempts were made before this error was returned.
    pub fn attempts(&self) -> u32 {
        match self {
            ServiceError::RetriesExhausted { attempts, .. } => *attempts,
            other => other.context().map_or(0, |c| c.attempts),
        }
    }

    pub(crate) fn invalid(service: &Arc<str>, reason: impl Into<String>) -> Self {
        ServiceError::InvalidRequest {
            service: service.clone(),
            reason: reason.into(),
        }
    }
}
