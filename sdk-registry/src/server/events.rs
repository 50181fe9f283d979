//! `GET /v1/services/{service}/events`: a service's instances as server-sent events, for
//! dashboards and for any client that can read a stream (`curl -N`).
//!
//! The first event is the current set; each later one follows a change of membership,
//! address or health. Heartbeats alone send nothing. Every event is named `instances` and
//! carries the whole set as JSON. The stream ends when the server shuts down.

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::{Path, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::Stream;

use super::{ApiError, Registry};
use crate::{backend::name_segment, HealthStatus, RegistryBackend, ServiceInstance, Snapshot};

/// What an event reports of an instance: heartbeat times are left out, so a heartbeat is
/// not a change.
fn significant(snapshot: &Snapshot) -> Vec<(ServiceInstance, HealthStatus)> {
    snapshot
        .iter()
        .map(|r| (r.instance.clone(), r.health))
        .collect()
}

pub(super) async fn events(
    State(registry): State<Arc<Registry>>,
    Path(service): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let service = name_segment(&service)?.to_owned();
    let changes = registry.backend.watch(&service).await?;
    let closing = registry.closing.subscribe();
    let state = (
        changes,
        closing,
        None::<Vec<(ServiceInstance, HealthStatus)>>,
    );
    let stream =
        futures_util::stream::unfold(state, |(mut changes, mut closing, last)| async move {
            loop {
                if last.is_some() {
                    tokio::select! {
                        changed = changes.changed() => changed.ok()?,
                        _ = closing.changed() => return None,
                    }
                }
                if *closing.borrow() {
                    return None;
                }
                let snapshot = changes.borrow_and_update().clone();
                let now = significant(&snapshot);
                if last.as_ref() == Some(&now) {
                    continue;
                }
                let event = Event::default()
                    .event("instances")
                    .json_data(&*snapshot)
                    .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
                return Some((Ok(event), (changes, closing, Some(now))));
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
