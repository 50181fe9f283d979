//! Real axum servers on 127.0.0.1:0 for the integration tests. Each one counts and records
//! the requests it saw; replies are scripted per test.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod poll;
#[allow(unused_imports)] // each test file uses some of them
pub use poll::{poll, until};

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use sdk::{
    circuit_breaker::BreakerConfig,
    retry::{ExponentialBackoff, Jitter, RetryConfig},
    ServiceConfig, ServiceSdk,
};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(body: serde_json::Value) -> Self {
        Reply::status(200)
            .body(body.to_string())
            .header("content-type", "application/json")
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: tokio::time::Instant,
}

#[derive(Default)]
struct ScriptState {
    replies: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

/// A server answering every path and method from a script.
#[derive(Clone)]
pub struct Scripted {
    state: Arc<ScriptState>,
    pub url: String,
}

impl Scripted {
    /// Starts a server whose answer, once the script is used up, is `fallback`.
    pub async fn start(fallback: Reply) -> Scripted {
        let state = Arc::new(ScriptState::default());
        *state.fallback.lock().expect("lock") = Some(fallback);
        let router = Router::new().fallback(handle).with_state(state.clone());
        let url = serve(router).await;
        Scripted { state, url }
    }

    /// Queues answers to give before the fallback.
    pub fn then(&self, reply: Reply) -> &Self {
        self.state.replies.lock().expect("lock").push_back(reply);
        self
    }

    pub fn set_fallback(&self, reply: Reply) {
        *self.state.fallback.lock().expect("lock") = Some(reply);
    }

    pub fn hits(&self) -> usize {
        self.state.seen.lock().expect("lock").len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }
}

async fn handle(
    State(state): State<Arc<ScriptState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.seen.lock().expect("lock").push(Seen {
        method,
        uri: uri.to_string(),
        headers,
        body,
        at: tokio::time::Instant::now(),
    });
    let reply = {
        let next = state.replies.lock().expect("lock").pop_front();
        next.or_else(|| state.fallback.lock().expect("lock").clone())
            .unwrap_or(Reply::status(200))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (
        StatusCode::from_u16(reply.status).expect("scripted status"),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::try_from(name).expect("scripted header name"),
            HeaderValue::try_from(value).expect("scripted header value"),
        );
    }
    response
}

/// Serves `router` on a fresh loopback port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("server runs");
    });
    format!("http://{addr}")
}

/// A loopback URL where nothing listens (connection refused).
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

/// Retries with an exact, jitter-free schedule of 100 ms doubling.
pub fn exact_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig::new()
        .max_attempts(max_attempts)
        .backoff(ExponentialBackoff::default().jitter(Jitter::None))
}

/// A breaker that never opens, so retry tests see every attempt.
pub fn lenient_breaker() -> BreakerConfig {
    BreakerConfig::new().failure_threshold(10_000)
}

/// One attempt, no retries.
pub fn once() -> ServiceConfig {
    ServiceConfig::new().retry(RetryConfig::new().max_attempts(1))
}

/// Asserts that GET `/big` on service `svc` is refused as larger than `limit`.
pub async fn assert_body_too_large(sdk: &ServiceSdk, limit: usize) {
    let err = sdk
        .get_client("svc")
        .get("/big")
        .response()
        .await
        .expect_err("too large");
    assert!(
        matches!(err, sdk::ServiceError::BodyTooLarge { limit: l, .. } if l == limit),
        "{err:?}"
    );
}

/// An SDK with one service, `svc`, at `url`, on the transport's direct path (no layers, so
/// no decompression layer even though the tests build with the `compression` feature).
/// Tests that build their SDK otherwise run through the layered path: both stay covered.
pub fn sdk_for(url: &str, config: ServiceConfig) -> ServiceSdk {
    ServiceSdk::builder()
        .service("svc", config.instance(url))
        .decompression(false)
        .build()
        .expect("valid configuration")
}

/// Log output captured in memory (a `tracing_subscriber` writer); `text()` reads it.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The Prometheus text parser the registry's tests use too (one copy, in that crate).
#[path = "../../sdk-registry/tests/support/prometheus.rs"]
pub mod prometheus;
