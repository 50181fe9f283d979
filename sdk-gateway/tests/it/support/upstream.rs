//! A service behind the gateway: axum on 127.0.0.1:0, telling what it received.
//!
//! - any path: `{"instance", "method", "path", "query", "headers", "body_len"}`;
//! - `/download/{bytes}`: that many bytes, streamed in 64 KiB chunks;
//! - `PUT /upload`: reads the body as it comes, answers `{"bytes", "sum"}`;
//! - `/ws`: a WebSocket echo (a text `close-me` closes with 4001 `asked`), choosing the
//!   `echo.v2` subprotocol when offered.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use axum::{
    body::Body,
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        Path, Request, State,
    },
    response::{IntoResponse, Response},
    routing::{any, get, put},
    Json, Router,
};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use serde_json::json;

/// A running upstream instance.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts an instance that names itself `name`.
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(name, listener)
    }

    /// Serves on `listener`.
    pub fn serve(name: &str, listener: tokio::net::TcpListener) -> Upstream {
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let state = (Arc::<str>::from(name), hits.clone());
        let app = Router::new()
            .route("/download/{bytes}", get(download))
            .route("/upload", put(upload))
            .route("/ws", get(websocket))
            .fallback(any(echo))
            .with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream { addr, hits, server }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every connection, as a killed process would.
    pub fn kill(&self) {
        self.server.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = (Arc<str>, Arc<AtomicUsize>);

async fn echo(State((name, hits)): State<Shared>, request: Request) -> Json<serde_json::Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                json!(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    Json(json!({
        "instance": &*name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_len": body.len(),
    }))
}

async fn download(State((_, hits)): State<Shared>, Path(bytes): Path<u64>) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    const CHUNK: usize = 64 * 1024;
    let chunk = bytes::Bytes::from(vec![7u8; CHUNK]);
    let chunks = bytes.div_ceil(CHUNK as u64);
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let left = bytes - i * CHUNK as u64;
        let take = usize::try_from(left.min(CHUNK as u64)).expect("small");
        Ok::<_, std::io::Error>(chunk.slice(..take))
    });
    Response::builder()
        .header("content-length", bytes)
        .body(Body::from_stream(stream))
        .expect("a response")
}

async fn upload(State((_, hits)): State<Shared>, body: Body) -> Json<serde_json::Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let mut stream = body.into_data_stream();
    let (mut bytes, mut sum) = (0u64, 0u64);
    while let Some(Ok(chunk)) = stream.next().await {
        bytes += chunk.len() as u64;
        sum = chunk.iter().fold(sum, |s, b| s.wrapping_add(u64::from(*b)));
    }
    Json(json!({ "bytes": bytes, "sum": sum }))
}

async fn websocket(
    State((_, hits)): State<Shared>,
    upgrade: WebSocketUpgrade,
) -> impl IntoResponse {
    hits.fetch_add(1, Ordering::SeqCst);
    upgrade.protocols(["echo.v2"]).on_upgrade(echo_socket)
}

async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(text) if text.as_str() == "close-me" => {
                Message::Close(Some(CloseFrame {
                    code: 4001,
                    reason: "asked".into(),
                }))
            }
            Message::Text(text) => Message::Text(text),
            Message::Binary(data) => Message::Binary(data),
            // Pings and closes are answered by the socket itself (on its next read).
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}
