//! `/v1/services`, a service's instances, and `/watch`: the long poll that answers once the
//! instance set changes.

// The parent's imports and helpers (the extractors, `MAX_WAIT`): one list for both resource
// modules.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn services(
    State(registry): State<Arc<Registry>>,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(registry.backend.services().await?))
}

pub(super) async fn instances(
    State(registry): State<Arc<Registry>>,
    ServicePath(service): ServicePath,
) -> Result<Json<Vec<InstanceRecord>>, ApiError> {
    Ok(Json(registry.backend.instances(&service).await?))
}

#[derive(Deserialize)]
pub(super) struct WatchQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_wait")]
    wait: u64,
}

fn default_wait() -> u64 {
    30
}

/// The long poll: answers at once if the service changed after `after` (or `after` is from
/// another epoch: the registry restarted, so the follower takes the whole set), otherwise
/// when it next changes, or after `wait` seconds. Only this service's changes wake it.
/// Counts a long poll in `sdk_registry_watchers` while it waits (however it ends: answered,
/// timed out, or its client gone).
struct Waiting;

impl Waiting {
    fn start() -> Waiting {
        metrics::gauge!("sdk_registry_watchers").increment(1.0);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!("sdk_registry_watchers").decrement(1.0);
    }
}

pub(super) async fn watch(
    State(registry): State<Arc<Registry>>,
    ServicePath(service): ServicePath,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut changes = registry.backend.watch(&service).await?;
    let mut closing = registry.closing.subscribe();
    changes.borrow_and_update();
    let (version, _) = registry.backend.encoded(&service);
    let same_epoch = Registry::epoch_of(query.after) == registry.epoch;
    if same_epoch && version <= query.after && !*closing.borrow_and_update() {
        let wait = Duration::from_secs(query.wait).min(MAX_WAIT);
        let _waiting = Waiting::start();
        tokio::select! {
            _ = tokio::time::timeout(wait, changes.changed()) => {}
            _ = closing.changed() => {}
        }
    }
    let (version, instances) = registry.backend.encoded(&service);
    // `{"version":N,"instances":[...]}` around the shared JSON, which is not copied per
    // watcher into a new document.
    let head = Bytes::from(format!("{{\"version\":{version},\"instances\":"));
    let parts = [head, instances, Bytes::from_static(b"}")];
    let body = Body::from_stream(futures_util::stream::iter(
        parts.into_iter().map(Ok::<_, std::convert::Infallible>),
    ));
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
