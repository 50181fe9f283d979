//! `GET /v1/services/{service}/events`: a service's instances as server-sent events, for
//! dashboards and for any client that can read a stream (`curl -N`).
//!
//! The first event is the current set; each later one follows a change of membership,
//! address or health (heartbeats change nothing). Every event is named `instances`, has the
//! service's version as its `id`, and carries the whole set as JSON. A comment line every
//! 15 s keeps idle streams open through proxies. The stream ends when the server shuts down.
//!
//! The cost per watcher is constant: the JSON of each version is made once and the same
//! buffer is sent to every watcher, and a watcher only ever holds the newest version (one
//! that reads slowly skips the ones in between). A watcher that stops reading altogether
//! is closed by the connection's idle timeout and, reconnecting, gets the current set.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use tokio::sync::watch;

use super::{ApiError, Registry, ServicePath};
use crate::{RegistryBackend, Snapshot};

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where one event stream is.
struct Follower {
    registry: Arc<Registry>,
    service: String,
    changes: watch::Receiver<Snapshot>,
    closing: watch::Receiver<bool>,
    /// The version last sent (None before the first event).
    sent: Option<u64>,
    /// Frames ready to go (an event is three: head, shared JSON, tail).
    queued: Vec<Bytes>,
}

pub(super) async fn events(
    State(registry): State<Arc<Registry>>,
    ServicePath(service): ServicePath,
) -> Result<Response, ApiError> {
    let changes = registry.backend.watch(&service).await?;
    let follower = Follower {
        closing: registry.closing.subscribe(),
        registry,
        service,
        changes,
        sent: None,
        queued: Vec::new(),
    };
    let stream = futures_util::stream::unfold(follower, |mut f| async move {
        let frame = f.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), f))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

impl Follower {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.queued.pop() {
                return Some(frame);
            }
            if *self.closing.borrow() {
                return None;
            }
            if self.sent.is_some() {
                tokio::select! {
                    changed = self.changes.changed() => changed.ok()?,
                    _ = self.closing.changed() => return None,
                    () = tokio::time::sleep(KEEP_ALIVE) => {
                        return Some(Bytes::from_static(b": keep-alive\n\n"));
                    }
                }
            }
            self.changes.borrow_and_update();
            let (version, json) = self.registry.backend.encoded(&self.service);
            if self.sent == Some(version) {
                continue;
            }
            self.sent = Some(version);
            // Popped from the end: tail, JSON, head.
            self.queued = vec![
                Bytes::from_static(b"\n\n"),
                json,
                Bytes::from(format!("event: instances\nid: {version}\ndata: ")),
            ];
        }
    }
}
