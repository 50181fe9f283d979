//! The one scripted upstream: a real axum server on 127.0.0.1:0 answering every path and
//! method from a per-test script of replies, recording each request it saw.

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

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// Headers to set.
    pub headers: Vec<(String, String)>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// A 200 with `body` as JSON.
    pub fn json(body: serde_json::Value) -> Self {
        Reply::status(200)
            .body(body.to_string())
            .header("content-type", "application/json")
    }

    /// An empty answer with `status`.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// With `body`.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// With the header `name: value`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answered after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Its method.
    pub method: Method,
    /// Its URI (path and query).
    pub uri: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it arrived.
    pub at: tokio::time::Instant,
}

impl Seen {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A header as text (empty when missing or not text).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default, Debug)]
struct ScriptState {
    replies: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

/// A server answering every path and method from a script.
#[derive(Clone, Debug)]
pub struct Scripted {
    state: Arc<ScriptState>,
    /// `http://127.0.0.1:port`.
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

    /// Replaces the answer given once the script is used up.
    pub fn set_fallback(&self, reply: Reply) {
        *self.state.fallback.lock().expect("lock") = Some(reply);
    }

    /// Requests seen so far.
    pub fn hits(&self) -> usize {
        self.state.seen.lock().expect("lock").len()
    }

    /// The requests seen so far, oldest first.
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
