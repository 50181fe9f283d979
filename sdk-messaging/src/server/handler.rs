//! Handlers with their types erased: bytes in, an outcome out.

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use http::StatusCode;
use sdk::{ServiceError, ServiceResult};
use serde::{de::DeserializeOwned, Serialize};

use crate::{broker::BoxFuture, MessageContext};

/// What handling one message came to.
#[derive(Debug)]
pub(crate) enum Handled {
    /// The handler answered (the reply's JSON; empty for an event).
    Done(Bytes),
    /// The payload does not decode into the handler's type: it never will.
    Undecodable(String),
    /// The handler failed.
    Failed(ServiceError),
}

/// A handler: the payload and its context in, what came of it out.
pub(crate) type ErasedHandler =
    Arc<dyn Fn(Bytes, MessageContext) -> BoxFuture<Handled> + Send + Sync>;

/// Erases a typed handler: decodes the payload as `T`, calls it, encodes its answer.
pub(crate) fn erase<T, R, F, Fut>(handler: F) -> ErasedHandler
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(T, MessageContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ServiceResult<R>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |payload: Bytes, context: MessageContext| {
        let handler = handler.clone();
        Box::pin(async move {
            let value: T = match serde_json::from_slice(&payload) {
                Ok(value) => value,
                Err(e) => {
                    return Handled::Undecodable(format!(
                        "the payload does not decode into {}: {e}",
                        std::any::type_name::<T>()
                    ))
                }
            };
            match context.clone().scope(handler(value, context)).await {
                Ok(answer) => match serde_json::to_vec(&answer) {
                    Ok(json) => Handled::Done(Bytes::from(json)),
                    Err(e) => Handled::Failed(ServiceError::InvalidRequest {
                        service: "handler".into(),
                        reason: format!("the handler's answer could not be serialized: {e}"),
                    }),
                },
                Err(e) => Handled::Failed(e),
            }
        }) as BoxFuture<Handled>
    })
}

/// What a failed handler said, for its reply's body and a dead letter's reason: a status
/// error's status and body (what `handler_error` gave), any other error as it displays.
pub(crate) fn failure_reason(error: &ServiceError) -> String {
    match (error.status_code(), error.body()) {
        (Some(status), Some(body)) if !body.is_empty() => {
            let body = String::from_utf8_lossy(&body[..body.len().min(1024)]);
            format!("{status}: {body}")
        }
        _ => error.to_string(),
    }
}

/// The status a failed handler's reply carries: the status of the error it returned when
/// that is a 4xx or 5xx, else 500 (400 for a request that did not decode).
pub(crate) fn failure_status(handled: &Handled) -> StatusCode {
    match handled {
        Handled::Done(_) => StatusCode::OK,
        Handled::Undecodable(_) => StatusCode::BAD_REQUEST,
        Handled::Failed(e) => e
            .status_code()
            .filter(|s| sdk::outcome::StatusClass::of(*s) != sdk::outcome::StatusClass::Success)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}
