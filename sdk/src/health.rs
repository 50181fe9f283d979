//! Active health checks on the client side.
//!
//! When a service's `health_check` is enabled, a background task probes every instance's
//! health path (`GET /health` by default) every `interval`. `unhealthy_threshold` failed
//! probes in a row take an instance out of rotation; `healthy_threshold` passing probes bring
//! it back. Each flip is reported to the `on_service_health_change` hooks. Probes go straight
//! to the transport, not through the pipeline: a health probe must not be cached, retried or
//! refused by a breaker.

use sdk_base::health::{probe, Checker, Finished, Probe};
use sdk_base::sync::Unpoisoned as _;
use sdk_base::sync::UnpoisonedRw as _;
use std::{
    collections::HashSet,
    fmt,
    future::Future,
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

/// What the checks of one service know; the balancer reads [`is_unhealthy`](Self::is_unhealthy).
///
/// The probing, the schedule and the streaks are the one checker's
/// ([`sdk_base::health::Checker`], shared with the registry server); this adds what a
/// verdict does on the client: an instance in or out of rotation, and the hooks told.
pub struct HealthState {
    service: String,
    config: HealthCheckConfig,
    checker: Checker<String>,
    /// The instances out of rotation, for the balancer's lock-free reads.
    unhealthy: ArcSwap<Vec<Arc<str>>>,
    /// The same, as the flips see it: written only under this lock.
    flips: Mutex<HashSet<String>>,
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
            checker: Checker::new(config.checks()),
            config,
            unhealthy: ArcSwap::default(),
            flips: Mutex::new(HashSet::new()),
            hooks,
        }
    }

    /// Whether `instance` is out of rotation because of its health checks.
    pub fn is_unhealthy(&self, instance: &str) -> bool {
        let unhealthy = self.unhealthy.load();
        !unhealthy.is_empty() && unhealthy.iter().any(|u| &**u == instance)
    }

    /// Probes every instance once, now, applies the thresholds (in the same streaks as the
    /// background checks), and reports each instance.
    pub(crate) async fn check(
        &self,
        http: &HttpStack,
        instances: &InstanceSet,
    ) -> Vec<InstanceHealth> {
        let snapshot = instances.current();
        self.forget_gone(&snapshot);
        let probes = snapshot
            .iter()
            .map(|instance| self.probe(http.clone(), instance.url()));
        let outcomes = futures_util::future::join_all(probes).await;
        let mut report = Vec::with_capacity(outcomes.len());
        for (instance, probe) in snapshot.iter().zip(outcomes) {
            let url = instance.url();
            let verdict = self.checker.record(url.to_owned(), url, probe.passed());
            let healthy = self.apply(url, verdict);
            report.push(InstanceHealth {
                instance: url.to_owned(),
                healthy,
                status: probe.status,
                error: probe.error,
            });
        }
        report
    }

    /// One probe of `instance`'s health path, through the transport (not the pipeline).
    fn probe(&self, http: HttpStack, instance: &str) -> impl Future<Output = Probe> + Send {
        let url = format!("{instance}{}", self.config.path);
        probe(self.config.timeout, async move {
            let request = http::Request::get(&url)
                .body(Bytes::new())
                .map_err(|e| e.to_string())?;
            match http.oneshot(request).await {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Forgets the instances no longer in the set (their streaks, and whether they were
    /// out of rotation), so neither outgrows it.
    fn forget_gone(&self, current: &[crate::instances::Instance]) {
        let live: HashSet<&str> = current.iter().map(|i| i.url()).collect();
        self.checker.retain(|url| live.contains(url.as_str()));
        self.forget_flips(current);
    }

    /// Forgets whether instances no longer in the set were out of rotation. (The scheduled
    /// checks call only this: the checker forgets their streaks itself.)
    fn forget_flips(&self, current: &[crate::instances::Instance]) {
        let mut flips = self.flips.locked();
        if flips.is_empty() {
            return;
        }
        let before = flips.len();
        flips.retain(|url| current.iter().any(|i| i.url() == url));
        if flips.len() != before {
            self.publish(&flips);
        }
    }

    fn publish(&self, unhealthy: &HashSet<String>) {
        let unhealthy = unhealthy
            .iter()
            .map(|url| Arc::from(url.as_str()))
            .collect();
        self.unhealthy.store(Arc::new(unhealthy));
    }

    /// Applies a verdict of the checker; returns whether the instance is now in rotation.
    fn apply(&self, instance: &str, verdict: Option<bool>) -> bool {
        let (flipped, healthy) = {
            let mut flips = self.flips.locked();
            let healthy = !flips.contains(instance);
            match verdict {
                Some(false) if healthy => {
                    flips.insert(instance.to_owned());
                    self.publish(&flips);
                    (true, false)
                }
                Some(true) if !healthy => {
                    flips.remove(instance);
                    self.publish(&flips);
                    (true, true)
                }
                _ => (false, healthy),
            }
        };
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

    /// Probes each instance every `interval`, on its own schedule, until the returned task
    /// is aborted (when the client is dropped).
    pub(crate) fn spawn(
        self: &Arc<Self>,
        http: HttpStack,
        instances: InstanceSet,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.config.enabled {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let state = self.clone();
        Some(runtime.spawn(async move {
            let targets = || {
                let snapshot = instances.current();
                state.forget_flips(&snapshot);
                let urls = snapshot.iter().map(|i| i.url().to_owned());
                urls.map(|url| (url.clone(), url)).collect()
            };
            let probe_one = |url: String| state.probe(http.clone(), &url);
            let finished = |done: Finished<String>| {
                state.apply(&done.key, done.verdict);
                std::future::ready(())
            };
            state.checker.run(targets, probe_one, finished).await;
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
        let streaks = state.checker.len();
        assert!(streaks <= 2, "streaks of {streaks} instances kept");
        assert!(state.unhealthy.load().len() <= 2);
    }
}
