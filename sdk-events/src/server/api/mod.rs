//! The routes and their handlers: this module holds the router, the helpers every handler
//! uses, `/health` and `/metrics`; each resource's handlers are in a module of its own (as
//! svix-server's `v1/endpoints/`).

mod applications;
mod deliveries;
mod events;
mod subscriptions;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{rejection::JsonRejection, DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use sdk_base::sync::UnpoisonedRw as _;
use sdk_server::{json_errors, ApiError};
use serde_json::{json, Value};
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::{
    auth::{self, Caller},
    requests::{self, bad},
    Bus,
};
use crate::{
    clock::{ms, rfc3339},
    schema,
    signature::Secret,
    store::{ActionRow, ApplicationRow, DeliveryStatus, NewEvent, StoreError, SubscriptionRow},
};

type Body<T> = Result<Json<T>, JsonRejection>;
type Answer = Result<Response, ApiError>;

/// The API over `bus`: routes, body limit and timeout, JSON errors.
pub fn router(bus: Arc<Bus>) -> Router {
    let (max_body, body_timeout) = (bus.config.max_body, bus.config.body_timeout);
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route(
            "/v1/applications",
            post(applications::create_application).get(applications::applications),
        )
        .route(
            "/v1/actions",
            post(applications::create_action).get(applications::actions),
        )
        .route(
            "/v1/subscriptions",
            post(subscriptions::create_subscription).get(subscriptions::subscriptions),
        )
        .route(
            "/v1/subscriptions/{name}/secret",
            post(subscriptions::rotate_secret),
        )
        .route(
            "/v1/subscriptions/{name}/enable",
            post(subscriptions::enable),
        )
        .route("/v1/events", post(events::publish).get(events::events))
        .route("/v1/deliveries", get(deliveries::deliveries))
        .route(
            "/v1/deliveries/{seq}/redrive",
            post(deliveries::redrive_one),
        )
        .route("/v1/redrive", post(deliveries::redrive_subscription))
        .route("/v1/replay", post(deliveries::replay))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn(json_errors))
        .with_state(bus)
}

/// A store failure as an answer: conflicts 409, missing names 404, the database 503 (the
/// change was not made; try again).
pub(super) fn store_error(e: StoreError) -> ApiError {
    let status = match &e {
        StoreError::Conflict(_) => StatusCode::CONFLICT,
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Config(_) | StoreError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(error = %e, "store failed");
    }
    ApiError(status, e.to_string())
}

fn created(body: Value) -> Answer {
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A secret as given (or a fresh one), in its written form.
fn secret_or_new(given: Option<&str>) -> Result<String, ApiError> {
    match given {
        Some(text) => Secret::parse(text)
            .map(|s| s.expose())
            .map_err(|e| bad(format!("`secret`: {e}"))),
        None => Ok(Secret::generate().expose()),
    }
}

async fn health(State(bus): State<Arc<Bus>>) -> Response {
    let database = bus.store.ping().await;
    let writes = if bus.config.admin_token.is_some() {
        "token"
    } else {
        "open"
    };
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if database { "ok" } else { "database unavailable" },
        "database": format!("{:?}", bus.store.backend()).to_lowercase(),
        "writes": writes,
    });
    (status, Json(body)).into_response()
}

async fn metrics_text(State(bus): State<Arc<Bus>>) -> Answer {
    let Some(handle) = &bus.config.metrics else {
        return Err(ApiError(StatusCode::NOT_FOUND, "metrics are off".into()));
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response())
}
