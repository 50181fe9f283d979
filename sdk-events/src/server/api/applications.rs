//! `/v1/applications` and `/v1/actions`: who publishes, and what (each action with its
//! JSON Schema).

// The parent's imports and helpers (`Answer`, `store_error`, the extractors): one list for
// the four resource modules.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn create_application(
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

pub(super) async fn applications(State(bus): State<Arc<Bus>>, headers: HeaderMap) -> Answer {
    bus.admin(&headers).await?;
    let rows = bus.store.applications().await.map_err(store_error)?;
    let listed: Vec<_> = rows
        .iter()
        .map(|a| json!({"application": a.name, "address": a.address, "created_at": rfc3339(a.created_ms)}))
        .collect();
    Ok(Json(json!({ "applications": listed })).into_response())
}

pub(super) async fn create_action(
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

pub(super) async fn actions(State(bus): State<Arc<Bus>>, headers: HeaderMap) -> Answer {
    bus.admin(&headers).await?;
    let rows = bus.store.actions().await.map_err(store_error)?;
    let listed: Vec<_> = rows.iter().map(action_json).collect();
    Ok(Json(json!({ "actions": listed })).into_response())
}
