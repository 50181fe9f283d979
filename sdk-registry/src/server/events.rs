//! `GET /v1/services/{service}/events`: a service's instances as server-sent events, for
//! dashboards and for any client that can read a stream (`curl -N`); and `GET /v1/events`:
//! every service at once, for the dashboard page.
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
    Ok(event_stream(Body::from_stream(stream)))
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

/// Least time between two events of the all-services stream: a burst of changes is sent as
/// one event, so a fast-changing registry costs a dashboard at most four a second.
const ALL_MIN_GAP: Duration = Duration::from_millis(250);
/// How often, at most, the all-services stream is sent again without a change, so heartbeat
/// times (which change no version) stay current on the page; a quarter of the TTL when that
/// is shorter, so an instance is marked stale within a quarter TTL of becoming so.
const ALL_REFRESH: Duration = Duration::from_secs(5);

/// `GET /v1/events`: every service with instances, as one event named `registry` whose
/// data is `{"version", "ttl_ms", "now_ms", "services": [{"name", "instances"}]}` (the
/// instances as `/v1/services/{service}/instances` gives them, with their latest heartbeat
/// times). Sent at once, after each change (at most four a second), and every 5 s (or a
/// quarter of the TTL, if shorter).
///
/// The JSON is made at most once per version and second, and shared by every stream.
pub(super) async fn all_events(State(registry): State<Arc<Registry>>) -> Response {
    let refresh = (registry.config.ttl / 4).clamp(ALL_MIN_GAP, ALL_REFRESH);
    let follower = AllFollower {
        refresh,
        changes: registry.backend.watch_all(),
        closing: registry.closing.subscribe(),
        registry,
        last: None,
        queued: Vec::new(),
    };
    let stream = futures_util::stream::unfold(follower, |mut f| async move {
        let frame = f.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), f))
    });
    event_stream(Body::from_stream(stream))
}

/// The headers of a server-sent event stream.
fn event_stream(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Where one all-services stream is.
struct AllFollower {
    registry: Arc<Registry>,
    changes: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    /// When the last event went.
    last: Option<tokio::time::Instant>,
    /// How long without a change before the set is sent again.
    refresh: Duration,
    queued: Vec<Bytes>,
}

impl AllFollower {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if let Some(frame) = self.queued.pop() {
            return Some(frame);
        }
        if *self.closing.borrow() {
            return None;
        }
        if let Some(last) = self.last {
            tokio::select! {
                changed = self.changes.changed() => changed.ok()?,
                _ = self.closing.changed() => return None,
                () = tokio::time::sleep_until(last + self.refresh) => {}
            }
            tokio::time::sleep_until(last + ALL_MIN_GAP).await;
        }
        self.changes.borrow_and_update();
        self.last = Some(tokio::time::Instant::now());
        let (version, json) = self.registry.everything();
        // Popped from the end: tail, JSON, head.
        self.queued = vec![
            Bytes::from_static(b"\n\n"),
            json,
            Bytes::from(format!("event: registry\nid: {version}\ndata: ")),
        ];
        self.queued.pop()
    }
}

impl Registry {
    /// The all-services JSON at the current version, made again when the version moved or
    /// the one made is a second old (for the heartbeat times).
    fn everything(&self) -> (u64, Bytes) {
        let version = self.backend.version();
        let mut cached = self
            .everything
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at_version, made, json)) = &*cached {
            if *at_version == version && made.elapsed() < Duration::from_secs(1) {
                return (version, json.clone());
            }
        }
        let services: Vec<serde_json::Value> = self
            .backend
            .everything()
            .into_iter()
            .map(|(name, instances)| serde_json::json!({ "name": name, "instances": instances }))
            .collect();
        let document = serde_json::json!({
            "version": version,
            "ttl_ms": u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX),
            "now_ms": crate::backend::unix_ms(),
            "services": services,
        });
        let json = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        *cached = Some((version, tokio::time::Instant::now(), json.clone()));
        (version, json)
    }
}
