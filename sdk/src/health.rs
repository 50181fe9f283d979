//! Active health checks on the client side.
//!
//! When a service's `health_check` is enabled, a background task probes every instance's
//! health path (`GET /health` by default) every `interval`. `unhealthy_threshold` failed
//! probes in a row take an instance out of rotation; `healthy_threshold` passing probes bring
//! it back. Each flip is reported to the `on_service_health_change` hooks. Probes go straight
//! to the transport, not through the pipeline: a health probe must not be cached, retried or
//! refused by a breaker.

use sdk_base::sync::Unpoisoned as _;
use sdk_base::sync::UnpoisonedRw as _;
use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, RwLock},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tower::ServiceExt;

pub use crate::settings::HealthCheckConfig;
use crate::{instances::InstanceSet, middleware::HttpStack};

/// The outcome of probing one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceHealth {
    /// The instance's base URL.
    pub instance: String,
    /// Whether it is in rotation (after thresholds).
    pub healthy: bool,
    /// The status of the last probe, if it answered.
    pub status: Option<u16>,
    /// Why the last probe failed, if it did.
    pub error: Option<String>,
}

/// An instance went in or out of rotation because of its health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    /// The service.
    pub service: String,
    /// The instance's base URL.
    pub instance: String,
    /// Its new state.
    pub healthy: bool,
    /// Who decided.
    pub source: HealthSource,
}

/// Where a [`HealthChange`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthSource {
    /// This SDK's own health checks (`[services.X.health_check]`).
    ClientCheck,
    /// The registry (its active health checks, or any writer of the instance's health).
    Registry,
}

/// A health-change hook.
pub type HealthHook = Arc<dyn Fn(&HealthChange) + Send + Sync>;

/// The SDK's health-change hooks: set on the builder and added later with
/// `ServiceSdk::on_service_health_change`, shared by every service's checks and by discovery.
#[derive(Clone, Default)]
pub(crate) struct HealthHooks(Arc<RwLock<Vec<HealthHook>>>);

impl HealthHooks {
    pub(crate) fn new(hooks: Vec<HealthHook>) -> Self {
        HealthHooks(Arc::new(RwLock::new(hooks)))
    }

    pub(crate) fn add(&self, hook: HealthHook) {
        self.0.write_locked().push(hook);
    }

    /// Logs the change and tells every hook.
    pub(crate) fn fire(&self, change: &HealthChange) {
        tracing::warn!(
            service = %change.service,
            instance = %change.instance,
            healthy = change.healthy,
            source = ?change.source,
            "instance health changed"
        );
        // Cloned out so a hook may add hooks without deadlocking.
        let hooks = self.0.read_locked().clone();
        for hook in &hooks {
            hook(change);
        }
    }
}

impl fmt::Debug for HealthHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.read_locked().len();
        write!(f, "HealthHooks({count})")
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Streak {
    unhealthy: bool,
    /// The probes' run (the registry's rule, shared with its server's probes).
    run: sdk_registry::HealthStreak,
}

/// What the checks of one service know; the balancer reads [`is_unhealthy`](Self::is_unhealthy).
pub struct HealthState {
    service: String,
    config: HealthCheckConfig,
    unhealthy: ArcSwap<Vec<Arc<str>>>,
    streaks: Mutex<HashMap<String, Streak>>,
    hooks: HealthHooks,
}

impl fmt::Debug for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthState")
            .field("service", &self.service)
            .field("unhealthy", &self.unhealthy.load())
            .finish_non_exhaustive()
    }
}

impl HealthState {
    pub(crate) fn new(service: &str, config: HealthCheckConfig, hooks: HealthHooks) -> Self {
        HealthState {
            service: service.to_owned(),
            config,
            unhealthy: ArcSwap::default(),
            streaks: Mutex::new(HashMap::new()),
            hooks,
        }
    }

    /// Whether `instance` is out of rotation because of its health checks.
    pub fn is_unhealthy(&self, instance: &str) -> bool {
        let unhealthy = self.unhealthy.load();
        !unhealthy.is_empty() && unhealthy.iter().any(|u| &**u == instance)
    }

    /// Probes every instance once, applies the thresholds, and reports each instance.
    pub(crate) async fn check(
        &self,
        http: &HttpStack,
        instances: &InstanceSet,
    ) -> Vec<InstanceHealth> {
        let snapshot = instances.current();
        self.forget_gone(&snapshot);
        let probes = snapshot.iter().map(|instance| {
            let http = http.clone();
            let url = format!("{}{}", instance.url(), self.config.path);
            let timeout = self.config.timeout;
            async move {
                let request = http::Request::get(&url).body(Bytes::new());
                let outcome = match request {
                    Ok(request) => match tokio::time::timeout(timeout, http.oneshot(request)).await
                    {
                        Ok(Ok(response)) => Ok(response.status().as_u16()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    },
                    Err(e) => Err(e.to_string()),
                };
                (url, outcome)
            }
        });
        let outcomes = futures_util::future::join_all(probes).await;
        let mut report = Vec::with_capacity(outcomes.len());
        for (instance, (_, outcome)) in snapshot.iter().zip(outcomes) {
            let passed = matches!(outcome, Ok(status) if sdk_base::accepted(status));
            let healthy = self.apply(instance.url(), passed);
            report.push(InstanceHealth {
                instance: instance.url().to_owned(),
                healthy,
                status: outcome.as_ref().ok().copied(),
                error: outcome.err(),
            });
        }
        report
    }

    /// Drops the streaks of instances no longer in the set, so they never outgrow it.
    fn forget_gone(&self, current: &[crate::instances::Instance]) {
        let mut streaks = self.streaks.locked();
        let before = streaks.len();
        let live: std::collections::HashSet<&str> = current.iter().map(|i| i.url()).collect();
        streaks.retain(|url, _| live.contains(url.as_str()));
        if streaks.len() != before {
            self.publish_unhealthy(&streaks);
        }
    }

    /// Publishes the instances out of rotation, for the balancer's lock-free reads.
    fn publish_unhealthy(&self, streaks: &HashMap<String, Streak>) {
        let unhealthy: Vec<Arc<str>> = streaks
            .iter()
            .filter(|(_, s)| s.unhealthy)
            .map(|(url, _)| Arc::from(url.as_str()))
            .collect();
        self.unhealthy.store(Arc::new(unhealthy));
    }

    /// Applies one probe result; returns whether the instance is now in rotation.
    fn apply(&self, instance: &str, passed: bool) -> bool {
        let change = {
            let mut streaks = self.streaks.locked();
            let streak = streaks.entry(instance.to_owned()).or_default();
            let verdict = streak.run.record(
                passed,
                self.config.healthy_threshold,
                self.config.unhealthy_threshold,
            );
            // The thresholds call for the health it does not have.
            let flip = verdict.is_some_and(|healthy| healthy == streak.unhealthy);
            if flip {
                streak.unhealthy = !streak.unhealthy;
            }
            let healthy = !streak.unhealthy;
            if flip {
                self.publish_unhealthy(&streaks);
            }
            (flip, healthy)
        };
        let (flipped, healthy) = change;
        if flipped {
            self.hooks.fire(&HealthChange {
                service: self.service.clone(),
                instance: instance.to_owned(),
                healthy,
                source: HealthSource::ClientCheck,
            });
        }
        healthy
    }

    /// Probes every `interval` until the returned task is aborted.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        http: HttpStack,
        instances: InstanceSet,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.config.enabled {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let state = Arc::downgrade(self);
        let interval = self.config.interval;
        Some(runtime.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                // Stop when the client is gone.
                let Some(state) = state.upgrade() else { return };
                state.check(&http, &instances).await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        instances::Instance,
        transport::{HyperTransport, TransportConfig},
    };

    #[tokio::test]
    async fn streaks_never_outgrow_the_instance_set() {
        // A port nothing listens on: every probe fails at once, for real.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let http =
            HttpStack::Hyper(HyperTransport::new(&TransportConfig::default()).expect("transport"));
        let config = HealthCheckConfig {
            unhealthy_threshold: 1,
            ..HealthCheckConfig::default()
        };
        let state = HealthState::new("svc", config, HealthHooks::default());
        let set = InstanceSet::default();
        // 10,000 distinct instances, two at a time, each probed (and marked unhealthy).
        for n in 0..5_000 {
            let pair = [2 * n, 2 * n + 1]
                .map(|i| Instance::parse(&format!("http://127.0.0.1:{port}/i{i}")).expect("valid"));
            set.replace(pair.to_vec());
            let report = state.check(&http, &set).await;
            assert!(report.iter().all(|r| !r.healthy));
        }
        let streaks = state.streaks.lock().map_or(0, |s| s.len());
        assert!(streaks <= 2, "streaks of {streaks} instances kept");
        assert!(state.unhealthy.load().len() <= 2);
    }
}
