use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use sdk_registry::{HealthStatus, RegistryBackend, Snapshot};
use tokio::sync::watch;

use super::{Discovery, Instance, InstanceSet};
use crate::health::{HealthChange, HealthHooks, HealthSource};

/// Discovery through a registry backend: each service's [`InstanceSet`] follows the
/// backend's watch, leaving out instances marked unhealthy. If the registry goes away, the
/// last known set keeps serving while the follower retries every second.
///
/// The followers are tokio tasks, started when a client of the service is first created
/// (inside a runtime) and stopped when this discovery is dropped.
pub struct RegistryDiscovery {
    backend: Arc<dyn RegistryBackend>,
    sets: Mutex<HashMap<String, InstanceSet>>,
    followed: Mutex<HashSet<String>>,
    // Dropping the sender stops every follower.
    shutdown: watch::Sender<()>,
    hooks: HealthHooks,
}

impl RegistryDiscovery {
    /// Discovery through `backend`.
    pub fn new(backend: Arc<dyn RegistryBackend>) -> Self {
        RegistryDiscovery {
            backend,
            sets: Mutex::new(HashMap::new()),
            followed: Mutex::new(HashSet::new()),
            shutdown: watch::Sender::new(()),
            hooks: HealthHooks::default(),
        }
    }

    /// Reports instances the registry marks unhealthy (or healthy again) to `hooks`.
    pub(crate) fn with_health_hooks(mut self, hooks: HealthHooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Keeps `set` equal to the registry's usable instances of `service` while `pinned` is
    /// false (once per service; later calls do nothing).
    pub fn follow_into(&self, service: &str, set: InstanceSet, pinned: Arc<AtomicBool>) {
        if !self
            .followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.to_owned())
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let follower = follow(
                    self.backend.clone(),
                    service.to_owned(),
                    Target { set, pinned },
                    self.hooks.clone(),
                    self.shutdown.subscribe(),
                );
                runtime.spawn(follower);
            }
            Err(_) => tracing::warn!(
                service,
                "no tokio runtime: this service's instances will not follow the registry"
            ),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn RegistryBackend> {
        &self.backend
    }
}

impl fmt::Debug for RegistryDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryDiscovery")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Discovery for RegistryDiscovery {
    fn instances(&self, service: &str) -> InstanceSet {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = sets.get(service) {
            return set.clone();
        }
        let set = InstanceSet::default();
        sets.insert(service.to_owned(), set.clone());
        drop(sets);
        self.follow_into(service, set.clone(), Arc::new(AtomicBool::new(false)));
        set
    }
}

/// Where a follower writes: the set, unless the service has since been pinned.
struct Target {
    set: InstanceSet,
    pinned: Arc<AtomicBool>,
}

async fn follow(
    backend: Arc<dyn RegistryBackend>,
    service: String,
    target: Target,
    hooks: HealthHooks,
    mut shutdown: watch::Receiver<()>,
) {
    // Each instance's last seen health (`true`: may take traffic), to report flips.
    let mut last_health: HashMap<String, bool> = HashMap::new();
    loop {
        if target.pinned.load(Ordering::Acquire) {
            return;
        }
        match backend.watch(&service).await {
            Ok(mut changes) => loop {
                let snapshot = changes.borrow_and_update().clone();
                if target.pinned.load(Ordering::Acquire) {
                    return; // registered statically since: that source wins
                }
                target.set.replace(usable(&service, &snapshot));
                report_flips(&service, &snapshot, &mut last_health, &hooks);
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break },
                    _ = shutdown.changed() => return,
                }
            },
            Err(e) => {
                tracing::warn!(%service, error = %e, "registry unavailable; keeping the last known instances")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Fires a [`HealthChange`] for every instance whose registry health crossed between
/// unhealthy and not since the last snapshot (arrivals and departures are not flips).
fn report_flips(
    service: &str,
    snapshot: &Snapshot,
    last: &mut HashMap<String, bool>,
    hooks: &HealthHooks,
) {
    let now: HashMap<String, bool> = snapshot
        .iter()
        .map(|r| (r.instance.url(), r.health != HealthStatus::Unhealthy))
        .collect();
    for (instance, &healthy) in &now {
        if last.get(instance).is_some_and(|&was| was != healthy) {
            hooks.fire(&HealthChange {
                service: service.to_owned(),
                instance: instance.clone(),
                healthy,
                source: HealthSource::Registry,
            });
        }
    }
    *last = now;
}

/// The instances traffic may go to: not marked unhealthy, with a URL that parses.
fn usable(service: &str, snapshot: &Snapshot) -> Vec<Instance> {
    snapshot
        .iter()
        .filter(|record| record.health != HealthStatus::Unhealthy)
        .filter_map(|record| match Instance::parse(&record.instance.url()) {
            Ok(instance) => Some(instance),
            Err(e) => {
                tracing::warn!(service, error = %e, "skipping a registered instance");
                None
            }
        })
        .collect()
}
