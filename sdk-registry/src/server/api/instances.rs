//! `/v1/instances` and `/v1/services/{service}/instances/{id}/…`: registering, heartbeats,
//! health, deregistering. Each change goes through the writer.

// The parent's imports and helpers (the extractors, `MAX_WAIT`): one list for both resource
// modules.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) async fn register(
    State(registry): State<Arc<Registry>>,
    body: Result<Json<ServiceInstance>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(instance) = body?;
    instance.validate()?;
    registry
        .writer
        .write(Op::Register(instance.clone()))
        .await?;
    Ok((StatusCode::CREATED, Json(instance)))
}

pub(super) async fn deregister(
    State(registry): State<Arc<Registry>>,
    InstancePath(service, id): InstancePath,
) -> Result<StatusCode, ApiError> {
    registry
        .writer
        .write(Op::Deregister { service, id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn heartbeat(
    State(registry): State<Arc<Registry>>,
    InstancePath(service, id): InstancePath,
) -> Result<StatusCode, ApiError> {
    registry.backend.heartbeat(&service, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthBody {
    health: HealthStatus,
}

pub(super) async fn set_health(
    State(registry): State<Arc<Registry>>,
    InstancePath(service, id): InstancePath,
    body: Result<Json<HealthBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(HealthBody { health }) = body?;
    let op = Op::SetHealth {
        service,
        id,
        health,
    };
    registry.writer.write(op).await?;
    Ok(StatusCode::NO_CONTENT)
}
