//! The routes and their handlers.

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
            post(create_application).get(applications),
        )
        .route("/v1/actions", post(create_action).get(actions))
        .route(
            "/v1/subscriptions",
            post(create_subscription).get(subscriptions),
        )
        .route("/v1/subscriptions/{name}/secret", post(rotate_secret))
        .route("/v1/subscriptions/{name}/enable", post(enable))
        .route("/v1/events", post(publish).get(events))
        .route("/v1/deliveries", get(deliveries))
        .route("/v1/deliveries/{seq}/redrive", post(redrive_one))
        .route("/v1/redrive", post(redrive_subscription))
        .route("/v1/replay", post(replay))
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

async fn create_application(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    body: Body<requests::NewApplication>,
) -> Answer {
    bus.admin(&headers).await?;
    let Json(new) = body?;
    requests::name("application", &new.application)?;
    requests::url("address", &new.address)?;
    let secret = secret_or_new(new.secret.as_deref())?;
    let token = auth::new_token()?;
    let row = ApplicationRow {
        name: new.application,
        address: new.address,
        secret,
        created_ms: bus.clock.now_ms(),
    };
    bus.store
        .create_application(&row, &auth::hash(&token))
        .await
        .map_err(store_error)?;
    tracing::info!(application = %row.name, "application created");
    created(json!({
        "application": row.name,
        "address": row.address,
        "token": token,
        "secret": row.secret,
        "created_at": rfc3339(row.created_ms),
    }))
}

async fn applications(State(bus): State<Arc<Bus>>, headers: HeaderMap) -> Answer {
    bus.admin(&headers).await?;
    let rows = bus.store.applications().await.map_err(store_error)?;
    let listed: Vec<_> = rows
        .iter()
        .map(|a| json!({"application": a.name, "address": a.address, "created_at": rfc3339(a.created_ms)}))
        .collect();
    Ok(Json(json!({ "applications": listed })).into_response())
}

async fn create_action(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    body: Body<requests::NewAction>,
) -> Answer {
    bus.admin(&headers).await?;
    let Json(new) = body?;
    requests::name("action", &new.action)?;
    requests::name("application", &new.application)?;
    schema::compile(&new.schemata).map_err(|e| bad(format!("`schemata` is {e}")))?;
    let row = ActionRow {
        name: new.action,
        application: new.application,
        schema: new.schemata.to_string(),
        created_ms: bus.clock.now_ms(),
    };
    bus.store.create_action(&row).await.map_err(store_error)?;
    created(action_json(&row))
}

fn action_json(row: &ActionRow) -> Value {
    let schemata: Value = serde_json::from_str(&row.schema).unwrap_or(Value::Null);
    json!({
        "action": row.name,
        "application": row.application,
        "schemata": schemata,
        "created_at": rfc3339(row.created_ms),
    })
}

async fn actions(State(bus): State<Arc<Bus>>, headers: HeaderMap) -> Answer {
    bus.admin(&headers).await?;
    let rows = bus.store.actions().await.map_err(store_error)?;
    let listed: Vec<_> = rows.iter().map(action_json).collect();
    Ok(Json(json!({ "actions": listed })).into_response())
}

async fn create_subscription(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    body: Body<requests::NewSubscription>,
) -> Answer {
    bus.admin(&headers).await?;
    let Json(new) = body?;
    requests::name("subscription", &new.subscription)?;
    requests::name("application", &new.application)?;
    requests::name("action", &new.action)?;
    requests::url("handler", &new.handler)?;
    requests::handler_address("handler", &new.handler, &bus.config.handlers)?;
    let secret = match new.secret.as_deref() {
        Some(given) => secret_or_new(Some(given))?,
        None => {
            bus.store
                .require_application(&new.application)
                .await
                .map_err(store_error)?
                .secret
        }
    };
    let row = SubscriptionRow {
        name: new.subscription,
        application: new.application,
        action: new.action,
        handler: new.handler,
        secret,
        previous_secret: None,
        enabled: true,
        disabled_reason: None,
        created_ms: bus.clock.now_ms(),
    };
    bus.store
        .create_subscription(&row)
        .await
        .map_err(store_error)?;
    let mut shown = subscription_json(&row);
    shown["secret"] = Value::from(row.secret);
    created(shown)
}

fn subscription_json(row: &SubscriptionRow) -> Value {
    json!({
        "subscription": row.name,
        "application": row.application,
        "action": row.action,
        "handler": row.handler,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "rotating": row.previous_secret.is_some(),
        "created_at": rfc3339(row.created_ms),
    })
}

async fn subscriptions(State(bus): State<Arc<Bus>>, headers: HeaderMap) -> Answer {
    bus.admin(&headers).await?;
    let rows = bus.store.subscriptions().await.map_err(store_error)?;
    let listed: Vec<_> = rows.iter().map(subscription_json).collect();
    Ok(Json(json!({ "subscriptions": listed })).into_response())
}

async fn rotate_secret(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    bus.admin(&headers).await?;
    let rotate: requests::Rotate = if body.iter().all(u8::is_ascii_whitespace) {
        requests::Rotate::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the body is not a rotation: {e}")))?
    };
    let keep = rotate.keep_previous_secs.unwrap_or(86_400);
    if keep > 7 * 86_400 {
        return Err(bad("`keep_previous_secs` is at most a week (604800)"));
    }
    let secret = secret_or_new(rotate.secret.as_deref())?;
    let until = bus
        .clock
        .now_ms()
        .saturating_add(ms(Duration::from_secs(keep)));
    bus.store
        .rotate_secret(&name, &secret, until)
        .await
        .map_err(store_error)?;
    tracing::info!(subscription = %name, "secret rotated");
    Ok(Json(json!({
        "subscription": name,
        "secret": secret,
        "previous_signs_until": rfc3339(until),
    }))
    .into_response())
}

async fn enable(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    bus.admin(&headers).await?;
    bus.store
        .set_enabled(&name, true, None)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn publish(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    body: Body<requests::Publish>,
) -> Answer {
    let caller = bus.caller(&headers).await?;
    let Json(publish) = body?;
    requests::name("action", &publish.action)?;
    let action = bus.action(&publish.action).await?;
    match &caller {
        Caller::Open => {}
        Caller::Application(name) if *name == action.application => {}
        Caller::Application(name) => {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "application `{name}` may not publish `{}`: it belongs to `{}`",
                    action.name, action.application
                ),
            ))
        }
        Caller::Admin => {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "publish with the application's own token, not the admin's".into(),
            ))
        }
    }
    bus.check_payload(&action, &publish.payload)?;
    let key = publish.idempotency_key.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
        return Err(bad("an idempotency key is 1 to 256 bytes"));
    }
    let event = NewEvent {
        id: format!(
            "msg_{}",
            sdk::trace::hex_string(&fastrand::u128(..).to_be_bytes())
        ),
        action: action.name.clone(),
        application: action.application.clone(),
        payload: publish.payload.to_string(),
        idempotency_key: key,
        created_ms: bus.clock.now_ms(),
    };
    let published = bus.store.publish(&event).await.map_err(store_error)?;
    bus.wake_dispatcher();
    metrics::counter!("sdk_events_published_total", "action" => action.name).increment(1);
    let status = if published.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = json!({
        "id": published.id,
        "action": event.action,
        "created_at": rfc3339(published.created_ms),
        "deliveries": published.deliveries,
        "duplicate": published.duplicate,
    });
    Ok((status, Json(body)).into_response())
}

impl Bus {
    async fn action(&self, name: &str) -> Result<ActionRow, ApiError> {
        if let Some(found) = self.actions.read_locked().get(name) {
            return Ok(found.clone());
        }
        let found = self
            .store
            .action(name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ApiError(
                    StatusCode::NOT_FOUND,
                    format!("action `{name}` does not exist"),
                )
            })?;
        self.actions
            .write_locked()
            .insert(name.to_owned(), found.clone());
        Ok(found)
    }

    /// Checks `payload` against `action`'s schema: 422 naming the failing paths and
    /// keywords.
    fn check_payload(&self, action: &ActionRow, payload: &Value) -> Result<(), ApiError> {
        let compiled = self
            .schemas
            .get_or_compile(&action.name, &action.schema)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let violations = schema::violations(&compiled, payload);
        let Some(first) = violations.first() else {
            return Ok(());
        };
        let message = format!(
            "the payload does not match the schema of `{}`: at `{}`, {} ({})",
            action.name,
            if first.path.is_empty() {
                "/"
            } else {
                &first.path
            },
            first.message,
            first.keyword
        );
        Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, message))
    }
}

async fn events(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    query: Result<Query<requests::EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    bus.admin(&headers).await?;
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let from = match &query.from {
        Some(text) => requests::time_text("from", text)?,
        None => 0,
    };
    let to = match &query.to {
        Some(text) => requests::time_text("to", text)?,
        None => i64::MAX,
    };
    let limit = requests::limit(query.limit)?;
    let after = query
        .after
        .as_deref()
        .map(requests::event_cursor)
        .transpose()?;
    let rows = bus
        .store
        .events(query.action.as_deref(), from, to, after, limit)
        .await
        .map_err(store_error)?;
    let next = (i64::try_from(rows.len()).ok() == Some(limit))
        .then(|| rows.last().map(|r| format!("{}.{}", r.created_ms, r.seq)))
        .flatten();
    let listed: Vec<_> = rows
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "id": e.id,
                "action": e.action,
                "application": e.application,
                "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
                "created_at": rfc3339(e.created_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "events": listed, "next_after": next })).into_response())
}

async fn deliveries(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    query: Result<Query<requests::DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    bus.admin(&headers).await?;
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            DeliveryStatus::parse(text)
                .ok_or_else(|| bad("`status` is one of pending, delivered, dead"))?,
        ),
    };
    let limit = requests::limit(query.limit)?;
    let rows = bus
        .store
        .deliveries(
            status,
            query.subscription.as_deref(),
            query.after.unwrap_or(0),
            limit,
        )
        .await
        .map_err(store_error)?;
    let next = (i64::try_from(rows.len()).ok() == Some(limit))
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let listed: Vec<_> = rows
        .iter()
        .map(|d| {
            json!({
                "seq": d.seq,
                "event": d.event_id,
                "subscription": d.subscription,
                "status": d.status,
                "attempts": d.attempts,
                "next_attempt_at": (d.status == "pending").then(|| rfc3339(d.due_ms)),
                "last_status": d.last_status,
                "last_error": d.last_error,
                "replay": d.replay,
                "updated_at": rfc3339(d.updated_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": listed, "next_after": next })).into_response())
}

async fn redrive_one(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    Path(seq): Path<i64>,
) -> Answer {
    bus.admin(&headers).await?;
    let now = bus.clock.now_ms();
    let n = bus
        .store
        .redrive(crate::store::Redrive::One(seq), now)
        .await
        .map_err(store_error)?;
    if n == 0 {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dead delivery {seq}"),
        ));
    }
    bus.wake_dispatcher();
    Ok(Json(json!({ "redriven": n })).into_response())
}

async fn redrive_subscription(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    body: Body<requests::Redrive>,
) -> Answer {
    bus.admin(&headers).await?;
    let Json(redrive) = body?;
    requests::name("subscription", &redrive.subscription)?;
    let now = bus.clock.now_ms();
    let n = bus
        .store
        .redrive(
            crate::store::Redrive::Subscription(&redrive.subscription),
            now,
        )
        .await
        .map_err(store_error)?;
    bus.wake_dispatcher();
    Ok(Json(json!({ "redriven": n })).into_response())
}

async fn replay(
    State(bus): State<Arc<Bus>>,
    headers: HeaderMap,
    body: Body<requests::Replay>,
) -> Answer {
    bus.admin(&headers).await?;
    let Json(replay) = body?;
    requests::name("subscription", &replay.subscription)?;
    let from = requests::time("from", &replay.from)?;
    let to = requests::time("to", &replay.to)?;
    if to <= from {
        return Err(bad("`to` must be after `from`"));
    }
    let now = bus.clock.now_ms();
    let queued = bus
        .store
        .replay(&replay.subscription, from, to, now)
        .await
        .map_err(store_error)?;
    bus.wake_dispatcher();
    Ok(Json(json!({ "subscription": replay.subscription, "queued": queued })).into_response())
}

impl Bus {
    fn wake_dispatcher(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }
}
