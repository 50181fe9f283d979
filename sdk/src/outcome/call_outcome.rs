//! [`CallOutcome`]: how a finished call ended, the one name metrics, the `on_call` hook and
//! a fallback's cause all read.

use http::StatusCode;

use super::{Fault, StatusClass};
use crate::error::ServiceError;

/// How a call ended, as metrics and the `on_call` hook name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallOutcome {
    /// A 1xx, 2xx or 3xx answer.
    Success,
    /// A 4xx answer.
    ClientError,
    /// A 5xx answer.
    ServerError,
    /// The deadline or an attempt timeout fired.
    Timeout,
    /// The breaker refused the call.
    CircuitOpen,
    /// No connection could be made.
    Connect,
    /// The connection failed after the request was sent, or the answer broke off.
    Transport,
    /// The answer was larger than `max_response_bytes`.
    BodyTooLarge,
    /// The service had no instance to call.
    NoInstance,
    /// The caller's own middleware failed.
    Middleware,
    /// The request was invalid, or the answer could not be decoded.
    Invalid,
    /// A batch deadline cancelled the call.
    Cancelled,
    /// The call failed in a way its fallback takes over, and was handed to it (see
    /// [`fallback`](mod@crate::fallback)); what the fallback then does is its own.
    Fallback,
    /// The caller's own streamed request body broke off or stalled.
    RequestBody,
}

pub(crate) const OUTCOMES: usize = 14;

impl CallOutcome {
    /// The label value (`success`, `server_error`, `timeout`...).
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::ClientError => "client_error",
            CallOutcome::ServerError => "server_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::CircuitOpen => "circuit_open",
            CallOutcome::Connect => "connect",
            CallOutcome::Transport => "transport",
            CallOutcome::BodyTooLarge => "body_too_large",
            CallOutcome::NoInstance => "no_instance",
            CallOutcome::Middleware => "middleware",
            CallOutcome::Invalid => "invalid",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Fallback => "fallback",
            CallOutcome::RequestBody => "request_body",
        }
    }

    /// The outcome of an answer with `status`, by the status's own class.
    pub fn of_status(status: StatusCode) -> Self {
        Self::of_class(StatusClass::of(status))
    }

    /// The outcome of an answer of `class` (the class it was given where its attempt
    /// ended, [`ServiceResponse::class`](crate::ServiceResponse::class)).
    pub fn of_class(class: StatusClass) -> Self {
        match class.fault() {
            Fault::None => CallOutcome::Success,
            Fault::Caller => CallOutcome::ClientError,
            _ => CallOutcome::ServerError,
        }
    }

    /// The outcome of a failed call (a status error reads its status).
    pub fn of_error(error: &ServiceError) -> Self {
        match error {
            ServiceError::RetriesExhausted { last, .. } => Self::of_error(last),
            ServiceError::Status {
                status, context, ..
            } => Self::of_class(context.class.unwrap_or_else(|| StatusClass::of(*status))),
            ServiceError::Timeout { .. } => CallOutcome::Timeout,
            ServiceError::CircuitOpen { .. } => CallOutcome::CircuitOpen,
            ServiceError::Transport { connect: true, .. } => CallOutcome::Connect,
            ServiceError::Transport { .. } => CallOutcome::Transport,
            ServiceError::BodyTooLarge { .. } => CallOutcome::BodyTooLarge,
            ServiceError::NoHealthyInstance { .. } => CallOutcome::NoInstance,
            ServiceError::Middleware { .. } => CallOutcome::Middleware,
            ServiceError::RequestBody { .. } => CallOutcome::RequestBody,
            ServiceError::Cancelled => CallOutcome::Cancelled,
            _ => CallOutcome::Invalid,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
