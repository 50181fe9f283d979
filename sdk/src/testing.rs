//! Helpers for testing code that calls services, without a server: a [`ScriptedTransport`]
//! that answers from a script through the real pipeline (deadline, retries, breaker, cache
//! all run), and constructors for [`ServiceError`] values a fake can return.
//!
//! ```
//! use std::time::Duration;
//! use sdk::{prelude::*, testing::{Reply, ScriptedTransport}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = ScriptedTransport::new()
//!     .once(http::Method::GET, "/users/7", Reply::status(503))
//!     .on(http::Method::GET, "/users/7", Reply::json(&serde_json::json!({ "id": 7 })));
//! let sdk = transport.sdk(&["user-service"])?;
//! let user: serde_json::Value = sdk.get_client("user-service").get("/users/7").send().await?;
//! assert_eq!(user["id"], 7);
//! assert_eq!(transport.requests().len(), 2, "the 503 was retried");
//! # Ok(()) }
//! ```

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use sdk_base::sync::Unpoisoned as _;
use tower::Service;

use crate::{
    box_error::BoxError,
    error::{ErrorContext, ServiceError, TimeoutKind},
    transport::{HttpRequest, HttpResponse, TransportError},
    ConfigError, ServiceConfig, ServiceSdk,
};

/// One scripted answer: a status with headers and a body, after an optional delay, or a
/// connection failure.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    delay: Duration,
    failure: Option<Failure>,
}

#[derive(Clone, Copy, Debug)]
enum Failure {
    Connect,
    Reset,
}

impl Reply {
    /// An answer with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
            failure: None,
        }
    }

    /// A 200 with `value` as JSON.
    pub fn json(value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply::status(200)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(body)
    }

    /// A connection that could not be made (nothing was sent: even a POST is retried).
    pub fn connect_error() -> Self {
        Reply {
            failure: Some(Failure::Connect),
            ..Reply::status(500)
        }
    }

    /// A connection reset after the request was sent.
    pub fn connection_reset() -> Self {
        Reply {
            failure: Some(Failure::Reset),
            ..Reply::status(500)
        }
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Answers after `delay` (Tokio's clock: instant under `tokio::time::pause`).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the transport received.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SeenRequest {
    /// Its method.
    pub method: Method,
    /// Its absolute URI (the instance's, e.g. `http://user-service.test/users/7`).
    pub uri: Uri,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

#[derive(Debug)]
struct Rule {
    method: Method,
    path: String,
    queued: VecDeque<Reply>,
    standing: Option<Reply>,
}

#[derive(Debug)]
struct Script {
    rules: Vec<Rule>,
    fallback: Reply,
    seen: Vec<SeenRequest>,
}

/// A transport answering from a script, per method and path (the query is ignored), in
/// place of the network. Clones share the script and the record of requests.
#[derive(Clone, Debug)]
pub struct ScriptedTransport {
    script: Arc<Mutex<Script>>,
}

impl Default for ScriptedTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedTransport {
    /// An empty script: every request is answered 404.
    pub fn new() -> Self {
        ScriptedTransport {
            script: Arc::new(Mutex::new(Script {
                rules: Vec::new(),
                fallback: Reply::status(404),
                seen: Vec::new(),
            })),
        }
    }

    fn rule(&self, method: Method, path: &str, edit: impl FnOnce(&mut Rule)) {
        let mut script = self.script.locked();
        let index = match script
            .rules
            .iter()
            .position(|r| r.method == method && r.path == path)
        {
            Some(index) => index,
            None => {
                script.rules.push(Rule {
                    method,
                    path: path.to_owned(),
                    queued: VecDeque::new(),
                    standing: None,
                });
                script.rules.len() - 1
            }
        };
        edit(&mut script.rules[index]);
    }

    /// Answers `method path` with `reply` (after any replies queued with [`once`](Self::once)).
    #[must_use]
    pub fn on(self, method: Method, path: &str, reply: Reply) -> Self {
        self.rule(method, path, |rule| rule.standing = Some(reply));
        self
    }

    /// Answers the next `method path` with `reply`, once; several are used in order.
    #[must_use]
    pub fn once(self, method: Method, path: &str, reply: Reply) -> Self {
        self.rule(method, path, |rule| rule.queued.push_back(reply));
        self
    }

    /// Answers anything unscripted with `reply` (default: 404).
    #[must_use]
    pub fn fallback(self, reply: Reply) -> Self {
        self.script.locked().fallback = reply;
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.script.locked().seen.clone()
    }

    /// An SDK sending every call to this transport, with one instance
    /// (`http://<name>.test`) for each of `services` and their default settings.
    pub fn sdk(&self, services: &[&str]) -> Result<ServiceSdk, ConfigError> {
        let mut builder = ServiceSdk::builder().transport(self.clone());
        for service in services {
            builder = builder.service(
                *service,
                ServiceConfig::new().instance(format!("http://{service}.test")),
            );
        }
        builder.build()
    }

    fn answer(&self, request: &HttpRequest) -> Reply {
        let mut script = self.script.locked();
        script.seen.push(SeenRequest {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
            body: request.body().clone(),
        });
        let path = request.uri().path();
        let rule = script
            .rules
            .iter_mut()
            .find(|r| r.method == request.method() && r.path == path);
        match rule {
            Some(rule) => match rule.queued.pop_front() {
                Some(reply) => Some(reply),
                None => rule.standing.clone(),
            },
            None => None,
        }
        .unwrap_or_else(|| script.fallback.clone())
    }
}

impl Service<HttpRequest> for ScriptedTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = crate::box_error::BoxFuture<HttpResponse>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let reply = self.answer(&request);
        Box::pin(async move {
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            match reply.failure {
                Some(Failure::Connect) => Err(TransportError::new(
                    true,
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                )
                .into()),
                Some(Failure::Reset) => Err(TransportError::new(
                    false,
                    std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                )
                .into()),
                None => {
                    let mut response = http::Response::new(reply.body);
                    *response.status_mut() = reply.status;
                    *response.headers_mut() = reply.headers;
                    Ok(response)
                }
            }
        })
    }
}

fn context(service: &str) -> Box<ErrorContext> {
    Box::new(ErrorContext {
        service: service.into(),
        ..ErrorContext::default()
    })
}

/// A `Status` error, as a call answered `status` with `body` would return.
pub fn status_error(service: &str, status: StatusCode, body: impl Into<Bytes>) -> ServiceError {
    ServiceError::Status {
        context: context(service),
        status,
        headers: Box::default(),
        body: body.into(),
    }
}

/// A `Timeout` error of `kind` after `limit`.
pub fn timeout_error(service: &str, kind: TimeoutKind, limit: Duration) -> ServiceError {
    ServiceError::Timeout {
        context: context(service),
        kind,
        limit,
    }
}

/// A `CircuitOpen` error, the breaker admitting a probe in `retry_after`.
pub fn circuit_open_error(service: &str, retry_after: Duration) -> ServiceError {
    ServiceError::CircuitOpen {
        context: context(service),
        retry_after,
    }
}

/// A `Transport` error (`connect`: nothing was sent).
pub fn transport_error(service: &str, connect: bool) -> ServiceError {
    let kind = if connect {
        std::io::ErrorKind::ConnectionRefused
    } else {
        std::io::ErrorKind::ConnectionReset
    };
    ServiceError::Transport {
        context: context(service),
        connect,
        source: Box::new(std::io::Error::from(kind)),
    }
}
