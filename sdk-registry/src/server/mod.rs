//! The registry server (feature `server`): a REST API over the in-memory backend, with
//! heartbeat TTL eviction, a durable snapshot, and bearer-token writes.
//!
//! | method | path | |
//! | --- | --- | --- |
//! | `POST` | `/v1/instances` | register (JSON `ServiceInstance`) → 201 |
//! | `DELETE` | `/v1/services/{service}/instances/{id}` | deregister → 204 |
//! | `PUT` | `/v1/services/{service}/instances/{id}/heartbeat` | heartbeat → 204 |
//! | `PUT` | `/v1/services/{service}/instances/{id}/health` | record health (`{"health": "unhealthy"}`) → 204 |
//! | `GET` | `/v1/services` | service names |
//! | `GET` | `/v1/services/{service}/instances` | instances with health |
//! | `GET` | `/v1/services/{service}/watch?after=N&wait=30` | long-poll: answers when the registry's version passes `N` (or after `wait` seconds) |
//! | `GET` | `/v1/services/{service}/events` | server-sent events: the instances, again after every change |
//! | `GET` | `/health` | liveness |
//!
//! Errors are JSON `{"error": "..."}` with a 4xx status naming the problem.

mod events;
mod health;
mod snapshot;
pub mod tls;

pub use self::health::HealthChecks;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{rejection::JsonRejection, DefaultBodyLimit, Path, Query, Request, State},
    http::{header::AUTHORIZATION, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use self::snapshot::Snapshots;
use crate::{InMemoryBackend, InstanceRecord, RegistryBackend, RegistryError, ServiceInstance};

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Heartbeat TTL (default 90 s).
    pub ttl: Duration,
    /// Where the snapshot lives (default: none, state is lost on restart).
    pub snapshot: Option<PathBuf>,
    /// Bearer token required for writes (default: none).
    pub token: Option<String>,
    /// Require the token for reads too (default: false).
    pub protect_reads: bool,
    /// Largest request body (default 64 KiB).
    pub max_body: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ttl: Duration::from_secs(90),
            snapshot: None,
            token: None,
            protect_reads: false,
            max_body: 64 * 1024,
        }
    }
}

/// The server's state: the backend, the version counter watchers wait on, the snapshots.
#[derive(Debug)]
pub struct Registry {
    backend: InMemoryBackend,
    version: AtomicU64,
    changed: tokio::sync::watch::Sender<u64>,
    snapshots: Snapshots,
    config: ServerConfig,
    /// Set by [`close`](Registry::close): open watches and event streams end.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Registry {
    /// A registry restored from the snapshot, if there is one.
    pub async fn open(config: ServerConfig) -> std::io::Result<Arc<Registry>> {
        let snapshots = Snapshots::new(config.snapshot.clone());
        let backend = InMemoryBackend::with_ttl(config.ttl);
        let restored = snapshots.load().await?;
        for instance in restored {
            if let Err(e) = backend.register(instance).await {
                tracing::warn!(error = %e, "skipping an invalid instance in the snapshot");
            }
        }
        Ok(Arc::new(Registry {
            backend,
            version: AtomicU64::new(1),
            changed: tokio::sync::watch::Sender::new(1),
            snapshots,
            config,
            closing: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// Ends open long polls and event streams, so a graceful shutdown need not wait for
    /// them; call it when shutdown starts.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// The backend.
    pub fn backend(&self) -> &InMemoryBackend {
        &self.backend
    }

    fn bump(&self) -> u64 {
        let version = self.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(version);
        version
    }

    async fn persist(&self) -> Result<(), ApiError> {
        self.snapshots
            .save(|| self.backend.all_instances())
            .await
            .map_err(|e| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("could not save the snapshot: {e}"),
                )
            })
    }

    /// Probes the instances' health paths in the background.
    pub fn spawn_health_checks(
        self: &Arc<Self>,
        settings: HealthChecks,
    ) -> tokio::task::JoinHandle<()> {
        health::spawn(self.clone(), settings)
    }

    /// Evicts expired instances every `interval` (and records the change).
    pub fn spawn_evictor(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                if registry.backend.evict_expired() > 0 {
                    registry.bump();
                    if let Err(e) = registry.persist().await {
                        tracing::warn!(error = %e.1, "snapshot after eviction failed");
                    }
                }
            }
        })
    }
}

/// The router: the API, authentication, body limit.
pub fn router(registry: Arc<Registry>) -> Router {
    let max_body = registry.config.max_body;
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/v1/instances", post(register))
        .route("/v1/services", get(services))
        .route("/v1/services/{service}/instances", get(instances))
        .route(
            "/v1/services/{service}/instances/{id}",
            axum::routing::delete(deregister),
        )
        .route(
            "/v1/services/{service}/instances/{id}/heartbeat",
            put(heartbeat),
        )
        .route(
            "/v1/services/{service}/instances/{id}/health",
            put(set_health),
        )
        .route("/v1/services/{service}/watch", get(watch))
        .route("/v1/services/{service}/events", get(events::events))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(
            registry.clone(),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(registry)
}

/// A JSON error answer.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match &e {
            RegistryError::Invalid { .. } => StatusCode::BAD_REQUEST,
            RegistryError::UnknownInstance { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError(rejection.status(), rejection.body_text())
    }
}

async fn authenticate(
    State(registry): State<Arc<Registry>>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    let open = request.uri().path() == "/health";
    if let Some(token) = &registry.config.token {
        if !open && (write || registry.config.protect_reads) {
            let presented = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            // Compared in constant time, so the answer time says nothing about the token.
            if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                return ApiError(
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required".into(),
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

async fn register(
    State(registry): State<Arc<Registry>>,
    body: Result<Json<ServiceInstance>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(instance) = body?;
    registry.backend.register(instance.clone()).await?;
    registry.bump();
    registry.persist().await?;
    Ok((StatusCode::CREATED, Json(instance)))
}

async fn deregister(
    State(registry): State<Arc<Registry>>,
    Path((service, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    registry.backend.deregister(&service, &id).await?;
    registry.bump();
    registry.persist().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn heartbeat(
    State(registry): State<Arc<Registry>>,
    Path((service, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    registry.backend.heartbeat(&service, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct HealthBody {
    health: crate::HealthStatus,
}

async fn set_health(
    State(registry): State<Arc<Registry>>,
    Path((service, id)): Path<(String, String)>,
    body: Result<Json<HealthBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    registry
        .backend
        .set_health(&service, &id, body.health)
        .await?;
    registry.bump();
    Ok(StatusCode::NO_CONTENT)
}

async fn services(State(registry): State<Arc<Registry>>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(registry.backend.services().await?))
}

async fn instances(
    State(registry): State<Arc<Registry>>,
    Path(service): Path<String>,
) -> Result<Json<Vec<InstanceRecord>>, ApiError> {
    Ok(Json(registry.backend.instances(&service).await?))
}

#[derive(Deserialize)]
struct WatchQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_wait")]
    wait: u64,
}

fn default_wait() -> u64 {
    30
}

#[derive(Serialize)]
struct WatchAnswer {
    version: u64,
    instances: Vec<InstanceRecord>,
}

async fn watch(
    State(registry): State<Arc<Registry>>,
    Path(service): Path<String>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WatchAnswer>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut changed = registry.changed.subscribe();
    let mut closing = registry.closing.subscribe();
    let wait = Duration::from_secs(query.wait.min(60));
    if *changed.borrow_and_update() <= query.after && !*closing.borrow_and_update() {
        tokio::select! {
            _ = tokio::time::timeout(wait, changed.changed()) => {}
            _ = closing.changed() => {}
        }
    }
    let version = registry.version.load(Ordering::Acquire);
    Ok(Json(WatchAnswer {
        version,
        instances: registry.backend.instances(&service).await?,
    }))
}
