//! The client boundary: pipeline errors and non-2xx answers become a [`ServiceError`], once.

use std::time::Duration;

use bytes::Bytes;
use tower::timeout::error::Elapsed;

use crate::{
    balance::{AttemptError, NoInstances},
    circuit_breaker::CircuitOpen,
    deadline::DeadlineExceeded,
    error::{BoxError, ErrorContext, ServiceError, TimeoutKind},
    error_chain::find,
    redact::mark_sensitive,
    response::ServiceResponse,
    retry::RetriesExhausted,
    transport::{BodyTooLarge, TransportError},
};

/// Maps a pipeline error; `attempt_timeout` is reported as the limit of an attempt timeout.
pub(crate) fn from_pipeline(
    err: BoxError,
    mut context: ErrorContext,
    attempt_timeout: Option<Duration>,
) -> ServiceError {
    let root: &(dyn std::error::Error + 'static) = err.as_ref();
    if let Some(attempt) = find::<AttemptError>(root) {
        context.instance = Some(attempt.instance().clone());
    }
    let retried = find::<RetriesExhausted>(root).map(|r| (r.attempts, r.stop));
    context.attempts = match (retried, find::<AttemptError>(root)) {
        (Some((attempts, _)), _) => attempts,
        (None, Some(_)) => 1,
        (None, None) => 0,
    };
    let context = Box::new(context);
    let last = if let Some(open) = find::<CircuitOpen>(root) {
        ServiceError::CircuitOpen {
            context,
            retry_after: open.retry_after,
        }
    } else if let Some(deadline) = find::<DeadlineExceeded>(root) {
        ServiceError::Timeout {
            context,
            kind: TimeoutKind::Deadline,
            limit: deadline.limit,
        }
    } else if find::<Elapsed>(root).is_some() {
        ServiceError::Timeout {
            context,
            kind: TimeoutKind::Attempt,
            limit: attempt_timeout.unwrap_or_default(),
        }
    } else if let Some(too_large) = find::<BodyTooLarge>(root) {
        ServiceError::BodyTooLarge {
            context,
            limit: too_large.limit,
        }
    } else if find::<NoInstances>(root).is_some() {
        ServiceError::NoHealthyInstance { context }
    } else {
        let connect = find::<TransportError>(root).is_some_and(TransportError::is_connect);
        ServiceError::Transport {
            context,
            connect,
            source: err,
        }
    };
    match retried {
        Some((attempts, stop)) if attempts > 1 => ServiceError::RetriesExhausted {
            attempts,
            stop,
            last: Box::new(last),
        },
        _ => last,
    }
}

/// Maps a non-success answer to [`ServiceError::Status`], keeping at most `body_limit` bytes.
pub(crate) fn from_status(
    response: ServiceResponse,
    mut context: ErrorContext,
    body_limit: usize,
) -> ServiceError {
    context.instance = response.instance.clone();
    context.attempts = response.attempts;
    let mut headers = response.headers().clone();
    mark_sensitive(&mut headers);
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
    match stop {
        Some(stop) if attempts > 1 => ServiceError::RetriesExhausted {
            attempts,
            stop,
            last: Box::new(last),
        },
        _ => last,
    }
}
