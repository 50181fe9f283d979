//! The REST API: routes, handlers, authentication, and the one place that makes every error
//! answer JSON (and logs it).

mod instances;
mod services;

use sdk_base::sync::Unpoisoned as _;
use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{
        rejection::JsonRejection, DefaultBodyLimit, FromRequestParts, Path, Query, Request, State,
    },
    http::{header, request::Parts, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use bytes::Bytes;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use sdk_server::{json_errors, ApiError};

use super::{
    events,
    writer::{Op, WriteError},
    Registry,
};
use crate::{
    validate_name, HealthStatus, InstanceRecord, RegistryBackend, RegistryError, ServiceInstance,
};

/// The longest a long poll waits.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The router: the API, authentication, body limit and timeout, JSON errors.
pub fn router(registry: Arc<Registry>) -> Router {
    let config = &registry.config;
    let (max_body, body_timeout) = (config.max_body, config.body_timeout);
    Router::new()
        .route("/", get(index))
        .route("/dashboard.js", get(super::dashboard::script))
        .route("/dashboard.css", get(super::dashboard::style))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/v1/instances", post(instances::register))
        .route("/v1/services", get(services::services))
        .route("/v1/services/{service}/instances", get(services::instances))
        .route(
            "/v1/services/{service}/instances/{id}",
            axum::routing::delete(instances::deregister),
        )
        .route(
            "/v1/services/{service}/instances/{id}/heartbeat",
            put(instances::heartbeat),
        )
        .route(
            "/v1/services/{service}/instances/{id}/health",
            put(instances::set_health),
        )
        .route("/v1/services/{service}/watch", get(services::watch))
        .route("/v1/services/{service}/events", get(events::events))
        .route("/v1/events", get(events::all_events))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(
            registry.clone(),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn(json_errors))
        .with_state(registry)
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

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Refused(e) => e.into(),
            WriteError::Save(io) if io.kind() == std::io::ErrorKind::StorageFull => ApiError(
                StatusCode::INSUFFICIENT_STORAGE,
                "the registry's disk is full: the change was not made; reads go on, and writes are taken again once there is room".to_owned(),
            ),
            WriteError::Save(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            WriteError::Closed => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

async fn authenticate(
    State(registry): State<Arc<Registry>>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    // The index and liveness say nothing about the services registered.
    let open = matches!(
        request.uri().path(),
        "/" | "/health" | "/dashboard.js" | "/dashboard.css"
    );
    if let Some(token) = &registry.config.token {
        if !open && (write || registry.config.protect_reads) {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
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

/// A `{service}` path parameter, checked by the one name rule.
pub(super) struct ServicePath(pub(super) String);

/// `{service}` and `{id}` path parameters, checked by the one name rule.
struct InstancePath(String, String);

impl<S: Send + Sync> FromRequestParts<S> for ServicePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(service) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
        validate_name("service", &service)?;
        Ok(ServicePath(service))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for InstancePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((service, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
        validate_name("service", &service)?;
        validate_name("id", &id)?;
        Ok(InstancePath(service, id))
    }
}

/// What `GET /` answers: the server, its version, and its API, so a person (or a script)
/// who finds the port learns what it serves.
const ENDPOINTS: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/health",
        "liveness, and whether writes need a token",
    ),
    (
        "GET",
        "/metrics",
        "Prometheus text exposition: instances, writes, commit latency",
    ),
    (
        "POST",
        "/v1/instances",
        "register (or re-register) an instance: a ServiceInstance as JSON",
    ),
    (
        "GET",
        "/v1/services",
        "every service with at least one instance",
    ),
    (
        "GET",
        "/v1/services/{service}/instances",
        "a service's instances with health and last heartbeat",
    ),
    (
        "DELETE",
        "/v1/services/{service}/instances/{id}",
        "deregister an instance",
    ),
    (
        "PUT",
        "/v1/services/{service}/instances/{id}/heartbeat",
        "keep an instance alive",
    ),
    (
        "PUT",
        "/v1/services/{service}/instances/{id}/health",
        "mark an instance healthy or unhealthy",
    ),
    (
        "GET",
        "/v1/services/{service}/watch?version=N&wait=S",
        "long poll: the instances once they change past version N",
    ),
    (
        "GET",
        "/v1/services/{service}/events",
        "server-sent events: every change to a service's instances",
    ),
    (
        "GET",
        "/v1/events",
        "server-sent events: every service and its instances, after each change and every 5 s",
    ),
];

/// `/`: the dashboard for a browser (a request that accepts HTML), what the server is and
/// its endpoints (JSON) for anyone else.
async fn index(State(registry): State<Arc<Registry>>, headers: axum::http::HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        return super::dashboard::page();
    }
    describe(&registry).into_response()
}

fn describe(registry: &Registry) -> Json<serde_json::Value> {
    let endpoints: Vec<_> = ENDPOINTS
        .iter()
        .map(|(method, path, what)| {
            serde_json::json!({ "method": method, "path": path, "description": what })
        })
        .collect();
    Json(serde_json::json!({
        "name": "sdk-registry",
        "version": env!("CARGO_PKG_VERSION"),
        "writes": if registry.config.token.is_some() { "token" } else { "open" },
        "reads": if registry.config.protect_reads { "token" } else { "open" },
        "endpoints": endpoints,
    }))
}

/// The Prometheus exposition: the instance gauges are set from the registry's state as it
/// is now, then everything the recorder holds is rendered.
async fn metrics_text(State(registry): State<Arc<Registry>>) -> Result<Response, ApiError> {
    let Some(handle) = &registry.config.metrics else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "metrics are not enabled on this server".into(),
        ));
    };
    let set = |service: &str, healthy: usize, unhealthy: usize| {
        for (health, count) in [("healthy", healthy), ("unhealthy", unhealthy)] {
            metrics::gauge!("sdk_registry_instances", "service" => service.to_owned(), "health" => health)
                .set(count as f64);
        }
    };
    let mut now = std::collections::BTreeSet::new();
    for service in registry.backend.services().await? {
        let records = registry.backend.instances(&service).await?;
        let healthy = records
            .iter()
            .filter(|r| r.health != crate::HealthStatus::Unhealthy)
            .count();
        set(&service, healthy, records.len() - healthy);
        now.insert(service);
    }
    // A service gone since the last scrape drops to zero instead of keeping its last count.
    let before = std::mem::replace(&mut *registry.reported.locked(), now.clone());
    for gone in before.difference(&now) {
        set(gone, 0, 0);
    }
    handle.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

async fn health(State(registry): State<Arc<Registry>>) -> Json<serde_json::Value> {
    let writes = if registry.config.token.is_some() {
        "token"
    } else {
        "open"
    };
    // Reads are served either way; a full disk refuses writes until it has room.
    let (status, storage) = match registry.storage_full() {
        true => ("degraded", "full"),
        false => ("ok", "ok"),
    };
    Json(serde_json::json!({ "status": status, "writes": writes, "storage": storage }))
}
