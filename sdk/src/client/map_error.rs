//! The client boundary: pipeline errors and non-2xx answers become a [`ServiceError`], once.

use std::time::Duration;

use bytes::Bytes;

use crate::{
    error::{
        AttemptError, BoxError, CircuitOpen, DeadlineExceeded, ErrorContext, NoInstanceReason,
        NoInstances, RetriesExhausted, RetryStop, ServiceError, TimeoutKind,
    },
    error_chain,
    middleware::MiddlewareError,
    outcome::ErrorClass,
    redact::mark_sensitive,
    response::ServiceResponse,
    timeout::AttemptTimeout,
    transport::{BodyTooLarge, RequestBodyError, TransportError},
};

/// Maps a pipeline error to the error a caller sees, once, at the client boundary.
pub(crate) fn from_pipeline(err: BoxError, mut context: ErrorContext) -> ServiceError {
    let mut retried = None;
    let mut attempted = false;
    for e in error_chain::iter(err.as_ref()) {
        if let Some(r) = e.downcast_ref::<RetriesExhausted>() {
            retried = Some((r.attempts, r.stop));
        } else if let Some(a) = e.downcast_ref::<AttemptError>() {
            context.instance = Some(a.instance().clone());
            attempted = true;
        }
    }
    context.attempts = match retried {
        Some((attempts, _)) => attempts,
        None => u32::from(attempted),
    };
    let context = Box::new(context);
    // What kind of error it is was decided once (`outcome`); here only its facts are read.
    let class = ErrorClass::of(err.as_ref());
    let last = match class {
        ErrorClass::CircuitOpen => ServiceError::CircuitOpen {
            context,
            retry_after: error_chain::find::<CircuitOpen>(err.as_ref())
                .map_or(Duration::ZERO, |open| open.retry_after),
        },
        ErrorClass::Deadline => ServiceError::Timeout {
            context,
            kind: TimeoutKind::Deadline,
            limit: error_chain::find::<DeadlineExceeded>(err.as_ref())
                .map_or(Duration::ZERO, |d| d.limit),
        },
        ErrorClass::AttemptTimeout => ServiceError::Timeout {
            context,
            kind: TimeoutKind::Attempt,
            limit: error_chain::find::<AttemptTimeout>(err.as_ref())
                .map_or(Duration::ZERO, |t| t.limit),
        },
        ErrorClass::BodyTooLarge => ServiceError::BodyTooLarge {
            context,
            limit: error_chain::find::<BodyTooLarge>(err.as_ref()).map_or(0, |t| t.limit),
        },
        ErrorClass::NoInstance => ServiceError::NoHealthyInstance {
            context,
            reason: error_chain::find::<NoInstances>(err.as_ref())
                .map_or(NoInstanceReason::NothingRegistered, |n| n.0.clone()),
        },
        ErrorClass::Middleware => ServiceError::Middleware {
            context,
            source: match peel(err).downcast::<MiddlewareError>() {
                Ok(middleware) => middleware.into_source(),
                Err(other) => other,
            },
        },
        // Refused by the operator's policy before anything was sent: nothing to retry.
        ErrorClass::AddressRefused => ServiceError::InvalidRequest {
            reason: error_chain::find::<sdk_base::https::AddressRefused>(err.as_ref())
                .map_or_else(|| "the address was refused".to_owned(), ToString::to_string),
            service: context.service,
        },
        ErrorClass::Caller => ServiceError::RequestBody {
            context,
            stalled: error_chain::find::<RequestBodyError>(err.as_ref())
                .is_some_and(RequestBodyError::is_stalled),
            source: peel(err),
        },
        ErrorClass::Connect | ErrorClass::Transport | ErrorClass::Certificate => {
            ServiceError::Transport {
                context,
                connect: class == ErrorClass::Connect
                    || error_chain::find::<TransportError>(err.as_ref())
                        .is_some_and(TransportError::is_connect),
                // What the error says is in `context` and `RetriesExhausted`; the source
                // keeps the cause.
                source: peel(err),
            }
        }
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
    context.class = Some(response.class());
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
