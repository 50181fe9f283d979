//! `/v1/subscriptions`: who receives which actions, at which handler, with which secret.

// The parent's imports and helpers (`Answer`, `store_error`, the extractors): one list for
// the four resource modules.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn create_subscription(
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

pub(super) async fn subscriptions(State(bus): State<Arc<Bus>>, headers: HeaderMap) -> Answer {
    bus.admin(&headers).await?;
    let rows = bus.store.subscriptions().await.map_err(store_error)?;
    let listed: Vec<_> = rows.iter().map(subscription_json).collect();
    Ok(Json(json!({ "subscriptions": listed })).into_response())
}

pub(super) async fn rotate_secret(
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

pub(super) async fn enable(
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
