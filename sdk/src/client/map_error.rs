//! The client boundary: pipeline errors and non-2xx answers become a [`ServiceError`], once.

use std::time::Duration;

use bytes::Bytes;

use crate::{
    balance::{AttemptError, NoInstanceReason, NoInstances},
    circuit_breaker::CircuitOpen,
    deadline::DeadlineExceeded,
    error::{BoxError, ErrorContext, RetryStop, ServiceError, TimeoutKind},
    middleware::MiddlewareError,
    redact::mark_sensitive,
    response::ServiceResponse,
    retry::RetriesExhausted,
    timeout::AttemptTimeout,
    transport::{BodyTooLarge, TransportError},
};

/// Maps a pipeline error; `attempt_timeout` is reported as the limit of an attempt timeout.
pub(crate) fn from_pipeline(
    err: BoxError,
    mut context: ErrorContext,
    attempt_timeout: Option<Duration>,
) -> ServiceError {
    enum Kind {
        Open(Duration),
        Deadline(Duration),
        Attempt,
        TooLarge(usize),
        NoInstance(NoInstanceReason),
        Middleware,
        Transport(bool),
        Unknown,
    }
    let mut kind = Kind::Unknown;
    let mut retried = None;
    let mut attempted = false;
    // One walk down the source chain; the first classifying error wins.
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<RetriesExhausted>() {
            retried = Some((r.attempts, r.stop));
        } else if let Some(a) = e.downcast_ref::<AttemptError>() {
            context.instance = Some(a.instance().clone());
            attempted = true;
        } else if matches!(kind, Kind::Unknown) {
            kind = if let Some(open) = e.downcast_ref::<CircuitOpen>() {
                Kind::Open(open.retry_after)
            } else if let Some(d) = e.downcast_ref::<DeadlineExceeded>() {
                Kind::Deadline(d.limit)
            } else if e.is::<AttemptTimeout>() {
                Kind::Attempt
            } else if let Some(t) = e.downcast_ref::<BodyTooLarge>() {
                Kind::TooLarge(t.limit)
            } else if let Some(NoInstances(reason)) = e.downcast_ref::<NoInstances>() {
                Kind::NoInstance(reason.clone())
            } else if e.is::<MiddlewareError>() {
                Kind::Middleware
            } else if let Some(t) = e.downcast_ref::<TransportError>() {
                Kind::Transport(t.is_connect())
            } else {
                Kind::Unknown
            };
        }
        current = e.source();
    }
    context.attempts = match retried {
        Some((attempts, _)) => attempts,
        None => u32::from(attempted),
    };
    let context = Box::new(context);
    // What the error says is in `context` and `RetriesExhausted`; the source keeps the cause.
    let err = peel(err);
    let last = match kind {
        Kind::Open(retry_after) => ServiceError::CircuitOpen {
            context,
            retry_after,
        },
        Kind::Deadline(limit) => ServiceError::Timeout {
            context,
            kind: TimeoutKind::Deadline,
            limit,
        },
        Kind::Attempt => ServiceError::Timeout {
            context,
            kind: TimeoutKind::Attempt,
            limit: attempt_timeout.unwrap_or_default(),
        },
        Kind::TooLarge(limit) => ServiceError::BodyTooLarge { context, limit },
        Kind::NoInstance(reason) => ServiceError::NoHealthyInstance { context, reason },
        Kind::Middleware => ServiceError::Middleware {
            context,
            source: match err.downcast::<MiddlewareError>() {
                Ok(middleware) => middleware.into_source(),
                Err(other) => other,
            },
        },
        Kind::Transport(connect) => ServiceError::Transport {
            context,
            connect,
            source: err,
        },
        Kind::Unknown => ServiceError::Transport {
            context,
            connect: false,
            source: err,
        },
    };
    with_retry_stop(retried, last)
}

/// `last` inside [`ServiceError::RetriesExhausted`] when retrying stopped for a reason the
/// caller should see: after more than one attempt, or after one when a retry was wanted but
/// refused (budget exhausted, `Retry-After` too long, deadline reached). A call configured
/// for one attempt stays a bare error, and so does a first attempt cut off by the deadline
/// itself (its error already says so).
fn with_retry_stop(retried: Option<(u32, RetryStop)>, last: ServiceError) -> ServiceError {
    let deadline_itself = matches!(
        last,
        ServiceError::Timeout {
            kind: TimeoutKind::Deadline,
            ..
        }
    );
    match retried {
        Some((1, RetryStop::DeadlineReached)) if deadline_itself => last,
        Some((attempts, stop)) if attempts > 1 || stop != RetryStop::AttemptsExhausted => {
            ServiceError::RetriesExhausted {
                attempts,
                stop,
                last: Box::new(last),
            }
        }
        _ => last,
    }
}

/// Strips the pipeline's own wrappers (retries, the attempt's instance) off `err`, whose
/// facts the `ServiceError` already carries, leaving the cause.
fn peel(mut err: BoxError) -> BoxError {
    loop {
        err = match err.downcast::<RetriesExhausted>() {
            Ok(retried) => retried.into_source(),
            Err(other) => match other.downcast::<AttemptError>() {
                Ok(attempt) => attempt.into_source(),
                Err(other) => return other,
            },
        };
    }
}

/// Maps a non-success answer to [`ServiceError::Status`], keeping at most `body_limit` bytes.
pub(crate) fn from_status(
    response: ServiceResponse,
    mut context: ErrorContext,
    body_limit: usize,
    sensitive: &[http::HeaderName],
) -> ServiceError {
    context.instance = response.instance.clone();
    context.attempts = response.attempts;
    let mut headers = response.headers().clone();
    mark_sensitive(&mut headers, sensitive);
    let status = response.status();
    let stop = response.retry_stop;
    let attempts = response.attempts;
    let mut body: Bytes = response.into_bytes();
    body.truncate(body_limit);
    let last = ServiceError::Status {
        context: Box::new(context),
        status,
        headers: Box::new(headers),
        body,
    };
    with_retry_stop(stop.map(|stop| (attempts, stop)), last)
}
