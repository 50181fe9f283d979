//! `/v1/deliveries`, `/v1/redrive` and `/v1/replay`: what was delivered, and sending it
//! again.

// The parent's imports and helpers (`Answer`, `store_error`, the extractors): one list for
// the four resource modules.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn deliveries(
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

pub(super) async fn redrive_one(
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

pub(super) async fn redrive_subscription(
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

pub(super) async fn replay(
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
    pub(super) fn wake_dispatcher(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_one();
        }
    }
}
