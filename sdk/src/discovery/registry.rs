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
}

impl RegistryDiscovery {
    /// Discovery through `backend`.
    pub fn new(backend: Arc<dyn RegistryBackend>) -> Self {
        RegistryDiscovery {
            backend,
            sets: Mutex::new(HashMap::new()),
            followed: Mutex::new(HashSet::new()),
            shutdown: watch::Sender::new(()),
        }
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
                    set,
                    pinned,
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

async fn follow(
    backend: Arc<dyn RegistryBackend>,
    service: String,
    set: InstanceSet,
    pinned: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        if pinned.load(Ordering::Acquire) {
            return;
        }
        match backend.watch(&service).await {
            Ok(mut changes) => loop {
                let snapshot = changes.borrow_and_update().clone();
                if pinned.load(Ordering::Acquire) {
                    return; // registered statically since: that source wins
                }
                set.replace(usable(&service, &snapshot));
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
