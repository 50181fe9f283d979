//! Active health checks: every instance that declares a `health_check_path` is probed by the
//! one checker ([`sdk_base::health::Checker`], shared with the SDK's client-side checks): on
//! a schedule of its own, at most [`MAX_PROBES`](sdk_base::health::MAX_PROBES) at once.
//! `unhealthy_threshold` failures in a row mark it unhealthy, `healthy_threshold` passes mark
//! it healthy again, and clients leave unhealthy instances out of rotation. What this module
//! adds is what a verdict does here: it records the instance's new health.
//!
//! `https` instances are probed through the same rustls client the registry clients use
//! (Mozilla roots, or the server's `--probe-ca`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
pub use sdk_base::health::HealthChecks;
use sdk_base::health::{probe, Checker, Finished, Probe};

use super::{writer::Op, Registry};
use crate::{
    backend::client::{http_client, HttpClient},
    HealthStatus,
};

/// An instance, by service and id.
type Key = (String, String);

pub(super) fn spawn(
    registry: Arc<Registry>,
    settings: HealthChecks,
    tls: rustls::ClientConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = http_client(tls, settings.timeout);
        let checker = Checker::new(settings);
        let targets = || {
            let targets = registry.backend.probe_targets();
            targets
                .into_iter()
                .map(|(service, id, url)| ((service, id), url))
                .collect()
        };
        let probe_one = |url: String| {
            let client = client.clone();
            probe(settings.timeout, async move { get(&client, &url).await })
        };
        checker
            .run(targets, probe_one, |done| record(&registry, done))
            .await;
    })
}

/// One probe's request: the status of the answer.
async fn get(client: &HttpClient, url: &str) -> Result<u16, String> {
    let uri = url.parse::<http::Uri>().map_err(|e| e.to_string())?;
    let request = http::Request::get(uri)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    match client.request(request).await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => Err(crate::describe(&e)),
    }
}

/// When a probe's streak calls for a health the instance does not have, records it.
async fn record(registry: &Registry, done: Finished<Key>) {
    let Finished {
        key: (service, id),
        url,
        probe: Probe { error, .. },
        verdict,
    } = done;
    if let Some(error) = &error {
        tracing::debug!(%url, %error, "health probe failed");
    }
    let health = match verdict {
        Some(true) => HealthStatus::Healthy,
        Some(false) => HealthStatus::Unhealthy,
        None => return,
    };
    let current = registry.backend.record(&service, &id).map(|r| r.health);
    if current.is_none_or(|h| h == health) {
        return;
    }
    tracing::info!(%service, %id, ?health, "health changed");
    let op = Op::SetHealth {
        service: service.clone(),
        id: id.clone(),
        health,
    };
    if let Err(e) = registry.writer.write(op).await {
        tracing::warn!(%service, %id, error = %e, "could not record a health change");
    }
}
