use sdk_base::sync::Unpoisoned as _;
use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use sdk_base::backoff::Reconnect;
use sdk_registry::{HealthStatus, RegistryBackend, RegistryError, Snapshot};
use tokio::sync::watch;

use super::{Discovery, Instance, InstanceSet};
use crate::error::NoInstanceReason;
use crate::health::{HealthChange, HealthHooks, HealthSource};
use crate::instances::Explainer;

/// Discovery through a registry backend: each service's [`InstanceSet`] follows the
/// backend's watch, leaving out instances marked unhealthy. If the registry goes away, the
/// last known set keeps serving while the follower retries after a jittered backoff; a call
/// that finds the set empty says why (nothing registered, all unhealthy, the registry
/// unreachable, the credentials refused).
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
        if !self.followed.locked().insert(service.to_owned()) {
            return;
        }
        let status = Arc::new(FollowStatus::default());
        set.explain_with(explainer(self.backend.clone(), service, status.clone()));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let follower = follow(
                    self.backend.clone(),
                    service.to_owned(),
                    Target {
                        set,
                        pinned,
                        status,
                    },
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
        let mut sets = self.sets.locked();
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
    status: Arc<FollowStatus>,
}

/// What a follower knows beyond the usable set, to explain an empty one.
#[derive(Default)]
struct FollowStatus {
    /// Instances in the last snapshot, usable or not.
    registered: AtomicUsize,
    /// Why the last attempt to watch failed, if it did.
    problem: Mutex<Option<RegistryError>>,
}

/// Explains an empty set: the registry's trouble first (the set may be stale), then what
/// the last snapshot held.
fn explainer(
    backend: Arc<dyn RegistryBackend>,
    service: &str,
    status: Arc<FollowStatus>,
) -> Explainer {
    let service = service.to_owned();
    Arc::new(move || {
        let problem = backend
            .watch_problem(&service)
            .or_else(|| status.problem.locked().clone());
        match problem {
            Some(RegistryError::Unauthorized(why)) => NoInstanceReason::Unauthorized(why),
            Some(RegistryError::NotFound(url)) => NoInstanceReason::RegistryNotFound(url),
            Some(other) => NoInstanceReason::RegistryUnreachable(other.to_string()),
            None => match status.registered.load(Ordering::Acquire) {
                0 => NoInstanceReason::NothingRegistered,
                registered => NoInstanceReason::AllUnhealthy { registered },
            },
        }
    })
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
    let mut reconnect = Reconnect::new();
    loop {
        if target.pinned.load(Ordering::Acquire) {
            return;
        }
        match backend.watch(&service).await {
            Ok(mut changes) => loop {
                reconnect.succeeded();
                *target.status.problem.locked() = None;
                let snapshot = changes.borrow_and_update().clone();
                if target.pinned.load(Ordering::Acquire) {
                    return; // registered statically since: that source wins
                }
                target
                    .status
                    .registered
                    .store(snapshot.len(), Ordering::Release);
                target.set.replace(usable(&service, &snapshot));
                report_flips(&service, &snapshot, &mut last_health, &hooks);
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break },
                    _ = shutdown.changed() => return,
                }
            },
            Err(e) => {
                if reconnect.failures() == 0 {
                    tracing::warn!(%service, error = %e, "registry unavailable; keeping the last known instances");
                }
                *target.status.problem.locked() = Some(e);
                metrics::counter!(crate::telemetry::names::REGISTRY_FOLLOW_ERRORS, "service" => service.to_string())
                    .increment(1);
            }
        }
        // Jittered, so the followers of a registry that restarts do not return in lockstep.
        let wait = reconnect.failed();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
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
            Ok(instance) => Some(match &record.instance.version {
                Some(version) => instance.with_version(version),
                None => instance,
            }),
            Err(e) => {
                tracing::warn!(service, error = %e, "skipping a registered instance");
                None
            }
        })
        .collect()
}
