//! Active health checks: every instance that declares a `health_check_path` is probed each
//! interval; `unhealthy_threshold` failures in a row mark it unhealthy, `healthy_threshold`
//! passes mark it healthy again. Clients leave unhealthy instances out of rotation.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

use super::Registry;
use crate::{HealthStatus, RegistryBackend};

/// Health-check settings of the server.
#[derive(Clone, Copy, Debug)]
pub struct HealthChecks {
    /// Time between rounds.
    pub interval: Duration,
    /// Time allowed for one probe.
    pub timeout: Duration,
    /// Failures in a row that mark an instance unhealthy.
    pub unhealthy_threshold: u32,
    /// Passes in a row that mark it healthy.
    pub healthy_threshold: u32,
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            unhealthy_threshold: 3,
            healthy_threshold: 1,
        }
    }
}

#[derive(Default)]
struct Streak {
    failures: u32,
    passes: u32,
}

pub(super) fn spawn(
    registry: Arc<Registry>,
    settings: HealthChecks,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let mut streaks: HashMap<(String, String), Streak> = HashMap::new();
        let mut ticks = tokio::time::interval(settings.interval);
        loop {
            ticks.tick().await;
            let backend = registry.backend();
            let services = backend.services().await.unwrap_or_default();
            for service in services {
                for record in backend.instances(&service).await.unwrap_or_default() {
                    let Some(path) = &record.instance.health_check_path else {
                        continue;
                    };
                    let url = format!("{}{path}", record.instance.url());
                    let passed = match url.parse::<http::Uri>() {
                        Ok(uri) => matches!(
                            tokio::time::timeout(settings.timeout, client.get(uri)).await,
                            Ok(Ok(response)) if response.status().is_success()
                        ),
                        Err(_) => false,
                    };
                    let key = (service.clone(), record.instance.id.clone());
                    let streak = streaks.entry(key).or_default();
                    let next = if passed {
                        streak.failures = 0;
                        streak.passes += 1;
                        (streak.passes >= settings.healthy_threshold.max(1))
                            .then_some(HealthStatus::Healthy)
                    } else {
                        streak.passes = 0;
                        streak.failures += 1;
                        (streak.failures >= settings.unhealthy_threshold.max(1))
                            .then_some(HealthStatus::Unhealthy)
                    };
                    if let Some(health) = next.filter(|h| *h != record.health) {
                        tracing::info!(%service, id = %record.instance.id, ?health, "health changed");
                        if backend
                            .set_health(&service, &record.instance.id, health)
                            .await
                            .is_ok()
                        {
                            registry.bump();
                        }
                    }
                }
            }
            // Forget instances that are gone.
            let known = registry.backend().all_instances();
            streaks.retain(|(service, id), _| {
                known.iter().any(|i| &i.service == service && &i.id == id)
            });
        }
    })
}
