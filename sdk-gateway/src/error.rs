//! The gateway's own answers: every refusal and failure is JSON `{"error": "..."}` with a
//! status a client can act on, decided here, once.
//!
//! | what happened | status |
//! | --- | --- |
//! | no route matches | 404 |
//! | the route does not take the method | 405 (with `Allow`) |
//! | not a WebSocket handshake on a WebSocket route | 426 (with `Upgrade: websocket`) |
//! | no token, or an invalid one | 401 (with `WWW-Authenticate: Bearer`) |
//! | a valid token without the route's scopes | 403 |
//! | over the client's rate | 429 (with `Retry-After`) |
//! | unknown service, no healthy instance, open breaker | 503 (an open breaker with `Retry-After`) |
//! | the service's answer did not begin in time | 504 |
//! | the service could not be reached, or broke off | 502 |
//! | the client's request body sent nothing for the body timeout (or the route's timeout ran out while waiting for it) | 408 |
//! | the client's request body broke off | 400 |
//! | the path is ambiguous once decoded (`..%2f`, `%252e`, `..;`, `%5c`), or two `Host` headers | 400 |

use std::time::Duration;

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::{header, HeaderValue, StatusCode};
use sdk::{
    outcome::{Fault, StatusClass},
    ServiceError,
};

use crate::auth::AuthError;

/// A request the gateway answers itself.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    status: StatusCode,
    /// Whose failure it is: the class of the call's error when the service was called
    /// ([`ServiceError::fault`]), else the class of the gateway's own status.
    fault: Fault,
    message: String,
    retry_after: Option<Duration>,
    allow: Option<HeaderValue>,
    upgrade: Option<&'static str>,
}

impl GatewayError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        GatewayError {
            status,
            fault: StatusClass::of(status).fault(),
            message: message.into(),
            retry_after: None,
            allow: None,
            upgrade: None,
        }
    }

    /// Names the protocol the client should switch to (`Upgrade`, on a 426).
    pub(crate) fn upgrade_to(&mut self, protocol: &'static str) {
        self.upgrade = Some(protocol);
    }

    /// No route for the path.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no route matches this path")
    }

    /// The route takes other methods (`allow`, comma-separated).
    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this route does not take the method",
        );
        e.allow = Some(allow);
        e
    }

    /// The client went over its rate; it may try again after `wait`.
    pub fn rate_limited(wait: Duration) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        e.retry_after = Some(wait);
        e
    }

    /// `service` is not one the gateway can route to.
    pub fn unknown_service(service: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unknown service `{service}`"),
        )
    }

    /// The status of this answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whose failure this is. For a call to the service, the class of the call's error
    /// says, never the status the gateway answers with: a circuit breaker that is open
    /// and a service with no instance are answered with 503, but they are nobody's
    /// failure (nothing was sent).
    pub fn fault(&self) -> Fault {
        self.fault
    }
}

impl From<AuthError> for GatewayError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::Missing | AuthError::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthError::MissingScope(_) => StatusCode::FORBIDDEN,
        };
        GatewayError::new(status, e.to_string())
    }
}

impl From<&ServiceError> for GatewayError {
    /// The answer for a call that got no answer from the service. The message names the
    /// service and what went wrong, never an instance's address or a header.
    fn from(e: &ServiceError) -> Self {
        let mut answer = Self::answer_for(e);
        answer.fault = e.fault();
        answer
    }
}

impl GatewayError {
    fn answer_for(e: &ServiceError) -> Self {
        let service = e.context().map_or("the service", |c| &*c.service);
        let last = e.last_attempt();
        let (status, what) = match last {
            ServiceError::CircuitOpen { retry_after, .. } => {
                let mut answer = GatewayError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{service} is failing; its circuit breaker is open"),
                );
                answer.retry_after = Some(*retry_after);
                return answer;
            }
            ServiceError::NoHealthyInstance { reason, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no healthy instance: {reason}"),
            ),
            _ if e.is_timeout() => (StatusCode::GATEWAY_TIMEOUT, "no answer in time".to_owned()),
            ServiceError::InvalidRequest { reason, .. } => {
                return GatewayError::new(StatusCode::BAD_REQUEST, reason.clone())
            }
            // The client's own upload stalled or broke off: its failure, not the service's.
            ServiceError::RequestBody { stalled: true, .. } => {
                return GatewayError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body stalled: no bytes arrived for too long",
                )
            }
            ServiceError::RequestBody { .. } => {
                return GatewayError::new(StatusCode::BAD_REQUEST, "the request body broke off")
            }
            ServiceError::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "cancelled".to_owned()),
            _ => (
                StatusCode::BAD_GATEWAY,
                "the service could not be reached".to_owned(),
            ),
        };
        GatewayError::new(status, format!("{service}: {what}"))
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client that waits that long is let in.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, allow);
        }
        if let Some(protocol) = self.upgrade {
            headers.insert(header::UPGRADE, HeaderValue::from_static(protocol));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway's answer keeps the class of the call's error: an open breaker and a
    /// service with no instance are answered 503 yet are nobody's failure, a broken
    /// connection is the network's, and the gateway's own refusals are the caller's.
    #[test]
    fn the_answer_keeps_whose_fault_the_call_said() {
        let open = ServiceError::CircuitOpen {
            context: Box::default(),
            retry_after: Duration::from_secs(1),
        };
        let answer = GatewayError::from(&open);
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.fault(), Fault::None);
        let broken = ServiceError::Transport {
            context: Box::default(),
            connect: true,
            source: "refused".into(),
        };
        let answer = GatewayError::from(&broken);
        assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(answer.fault(), Fault::Network);
        assert_eq!(GatewayError::no_route().fault(), Fault::Caller);
        let limited = GatewayError::rate_limited(Duration::from_secs(1));
        assert_eq!(limited.fault(), Fault::Caller);
    }
}
