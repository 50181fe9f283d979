//! `/v1/events`: publishing (schema-checked, stored with its deliveries before it is
//! answered) and reading back.

// The parent's imports and helpers (`Answer`, `store_error`, the extractors): one list for
// the four resource modules.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn publish(
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
    pub(super) async fn action(&self, name: &str) -> Result<ActionRow, ApiError> {
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
    pub(super) fn check_payload(
        &self,
        action: &ActionRow,
        payload: &Value,
    ) -> Result<(), ApiError> {
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

pub(super) async fn events(
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
