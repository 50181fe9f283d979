use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::{unix_ms, BoxFuture, RegistryBackend, Snapshot};
use crate::{HealthStatus, InstanceRecord, RegistryError, ServiceInstance};

/// The embedded registry: instances in this process's memory, evicted when they miss their
/// heartbeats for a TTL (default 90 s).
///
/// ```
/// use sdk_registry::{InMemoryBackend, RegistryBackend, ServiceInstance};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let registry = InMemoryBackend::new();
/// registry.register(ServiceInstance::new("orders", "o-1", "127.0.0.1", 8081)).await?;
/// assert_eq!(registry.instances("orders").await?.len(), 1);
/// # Ok::<(), sdk_registry::RegistryError>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct InMemoryBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ttl: Duration,
    services: Mutex<HashMap<String, ServiceEntry>>,
}

#[derive(Debug)]
struct ServiceEntry {
    instances: BTreeMap<String, Entry>,
    changes: watch::Sender<Snapshot>,
}

#[derive(Debug)]
struct Entry {
    record: InstanceRecord,
    expires: Instant,
}

impl ServiceEntry {
    fn new() -> Self {
        ServiceEntry {
            instances: BTreeMap::new(),
            changes: watch::Sender::new(Arc::new(Vec::new())),
        }
    }

    fn publish(&self) {
        let snapshot: Vec<InstanceRecord> =
            self.instances.values().map(|e| e.record.clone()).collect();
        self.changes.send_replace(Arc::new(snapshot));
    }

    /// Drops expired instances and, if any went, tells the watchers; returns how many went.
    fn evict(&mut self, now: Instant) -> usize {
        let before = self.instances.len();
        self.instances.retain(|_, entry| entry.expires > now);
        let evicted = before - self.instances.len();
        if evicted > 0 {
            self.publish();
        }
        evicted
    }
}

impl Default for InMemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryBackend {
    /// A registry whose instances expire 90 s after their last heartbeat.
    pub fn new() -> Self {
        Self::with_ttl(Duration::from_secs(90))
    }

    /// A registry whose instances expire `ttl` after their last heartbeat.
    pub fn with_ttl(ttl: Duration) -> Self {
        InMemoryBackend {
            inner: Arc::new(Inner {
                ttl,
                services: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The heartbeat TTL.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    fn with_services<R>(&self, f: impl FnOnce(&mut HashMap<String, ServiceEntry>) -> R) -> R {
        let mut services = self
            .inner
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f(&mut services)
    }

    /// Every registered instance (for snapshots).
    pub fn all_instances(&self) -> Vec<ServiceInstance> {
        let now = Instant::now();
        self.with_services(|services| {
            services
                .values()
                .flat_map(|entry| entry.instances.values())
                .filter(|e| e.expires > now)
                .map(|e| e.record.instance.clone())
                .collect()
        })
    }

    /// Evicts every instance whose TTL has passed, and tells the watchers; returns how many
    /// were evicted. Reads evict lazily too; run [`spawn_evictor`](Self::spawn_evictor) so
    /// watchers hear about expiries without a read. Services with no instance and no watcher
    /// left are forgotten, so watching made-up names cannot grow the registry for good.
    pub fn evict_expired(&self) -> usize {
        let now = Instant::now();
        self.with_services(|services| {
            let evicted = services.values_mut().map(|entry| entry.evict(now)).sum();
            services.retain(|_, entry| {
                !entry.instances.is_empty() || entry.changes.receiver_count() > 0
            });
            evicted
        })
    }

    /// Evicts expired instances every `interval`, until the returned handle is aborted or the
    /// runtime stops.
    pub fn spawn_evictor(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let backend = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                backend.evict_expired();
            }
        })
    }

    fn update(
        &self,
        service: &str,
        id: &str,
        f: impl FnOnce(&mut Entry),
    ) -> Result<(), RegistryError> {
        let now = Instant::now();
        self.with_services(|services| {
            let unknown = || RegistryError::UnknownInstance {
                service: service.to_owned(),
                id: id.to_owned(),
            };
            let entry = services.get_mut(service).ok_or_else(unknown)?;
            entry.evict(now);
            let instance = entry.instances.get_mut(id).ok_or_else(unknown)?;
            f(instance);
            entry.publish();
            Ok(())
        })
    }
}

impl RegistryBackend for InMemoryBackend {
    fn register(&self, instance: ServiceInstance) -> BoxFuture<'_, Result<(), RegistryError>> {
        let result = instance.validate().map(|()| {
            let expires = Instant::now() + self.inner.ttl;
            self.with_services(|services| {
                let entry = services
                    .entry(instance.service.clone())
                    .or_insert_with(ServiceEntry::new);
                let health = entry
                    .instances
                    .get(&instance.id)
                    .filter(|e| e.record.instance == instance)
                    .map_or(HealthStatus::Unknown, |e| e.record.health);
                let record = InstanceRecord {
                    instance: instance.clone(),
                    health,
                    last_heartbeat_ms: unix_ms(),
                };
                entry
                    .instances
                    .insert(instance.id.clone(), Entry { record, expires });
                entry.publish();
            });
        });
        Box::pin(std::future::ready(result))
    }

    fn deregister<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        let result = self.with_services(|services| {
            let removed = services.get_mut(service).and_then(|entry| {
                let removed = entry.instances.remove(id);
                entry.publish();
                removed
            });
            match removed {
                Some(_) => Ok(()),
                None => Err(RegistryError::UnknownInstance {
                    service: service.to_owned(),
                    id: id.to_owned(),
                }),
            }
        });
        Box::pin(std::future::ready(result))
    }

    fn heartbeat<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        let ttl = self.inner.ttl;
        let result = self.update(service, id, |entry| {
            entry.expires = Instant::now() + ttl;
            entry.record.last_heartbeat_ms = unix_ms();
        });
        Box::pin(std::future::ready(result))
    }

    fn set_health<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
        health: HealthStatus,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        let result = self.update(service, id, |entry| entry.record.health = health);
        Box::pin(std::future::ready(result))
    }

    fn instances<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceRecord>, RegistryError>> {
        let now = Instant::now();
        let records = self.with_services(|services| match services.get_mut(service) {
            Some(entry) => {
                entry.evict(now);
                entry.instances.values().map(|e| e.record.clone()).collect()
            }
            None => Vec::new(),
        });
        Box::pin(std::future::ready(Ok(records)))
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<String>, RegistryError>> {
        let now = Instant::now();
        let names = self.with_services(|services| {
            let mut names: Vec<String> = services
                .iter_mut()
                .filter_map(|(name, entry)| {
                    entry.evict(now);
                    (!entry.instances.is_empty()).then(|| name.clone())
                })
                .collect();
            names.sort();
            names
        });
        Box::pin(std::future::ready(Ok(names)))
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Snapshot>, RegistryError>> {
        let receiver = self.with_services(|services| {
            services
                .entry(service.to_owned())
                .or_insert_with(ServiceEntry::new)
                .changes
                .subscribe()
        });
        Box::pin(std::future::ready(Ok(receiver)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, port: u16) -> ServiceInstance {
        ServiceInstance::new("orders", id, "127.0.0.1", port)
    }

    #[tokio::test(start_paused = true)]
    async fn register_list_deregister() {
        let registry = InMemoryBackend::new();
        registry.register(instance("a", 1)).await.expect("valid");
        registry.register(instance("b", 2)).await.expect("valid");
        registry
            .register(instance("a", 3))
            .await
            .expect("re-registering replaces");
        let records = registry.instances("orders").await.expect("ok");
        let ports: Vec<u16> = records.iter().map(|r| r.instance.port).collect();
        assert_eq!(ports, [3, 2]);
        assert_eq!(registry.services().await.expect("ok"), ["orders"]);
        registry
            .deregister("orders", "a")
            .await
            .expect("registered");
        assert_eq!(
            registry.deregister("orders", "a").await,
            Err(RegistryError::UnknownInstance {
                service: "orders".into(),
                id: "a".into()
            })
        );
        assert!(registry.instances("nothing").await.expect("ok").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_instances_are_refused_and_disturb_nothing() {
        let registry = InMemoryBackend::new();
        registry.register(instance("a", 1)).await.expect("valid");
        let err = registry
            .register(instance("b", 0))
            .await
            .expect_err("port 0");
        assert!(matches!(err, RegistryError::Invalid { field: "port", .. }));
        let err = registry
            .register(ServiceInstance::new("orders", "c", "evil host/", 80))
            .await;
        assert!(matches!(
            err,
            Err(RegistryError::Invalid { field: "host", .. })
        ));
        assert_eq!(registry.instances("orders").await.expect("ok").len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_keep_instances_alive_and_silence_evicts_them() {
        let registry = InMemoryBackend::with_ttl(Duration::from_secs(90));
        registry.register(instance("a", 1)).await.expect("valid");
        registry.register(instance("b", 2)).await.expect("valid");
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(60)).await;
            registry.heartbeat("orders", "a").await.expect("alive");
        }
        let records = registry.instances("orders").await.expect("ok");
        assert_eq!(records.len(), 1, "b missed its heartbeats for 180 s");
        assert_eq!(records[0].instance.id, "a");
        assert!(
            registry.heartbeat("orders", "b").await.is_err(),
            "b is gone"
        );
        tokio::time::advance(Duration::from_secs(91)).await;
        assert!(registry.instances("orders").await.expect("ok").is_empty());
        assert!(registry.services().await.expect("ok").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn services_nobody_watches_or_uses_are_forgotten() {
        let registry = InMemoryBackend::new();
        let ghost = registry.watch("ghost").await.expect("ok");
        let kept = registry.watch("orders").await.expect("ok");
        registry.register(instance("a", 1)).await.expect("valid");
        let entries = |r: &InMemoryBackend| r.with_services(|services| services.len());
        assert_eq!(entries(&registry), 2);
        drop(ghost);
        drop(kept);
        registry.evict_expired();
        assert_eq!(
            entries(&registry),
            1,
            "only `orders`, which has an instance, stays"
        );
        let _watching = registry.watch("later").await.expect("ok");
        registry.evict_expired();
        assert_eq!(
            entries(&registry),
            2,
            "a watched service stays while watched"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn watchers_see_every_change() {
        let registry = InMemoryBackend::with_ttl(Duration::from_secs(10));
        let mut changes = registry.watch("orders").await.expect("ok");
        assert!(changes.borrow().is_empty());
        registry.register(instance("a", 1)).await.expect("valid");
        changes.changed().await.expect("open");
        assert_eq!(changes.borrow_and_update().len(), 1);
        registry
            .set_health("orders", "a", HealthStatus::Unhealthy)
            .await
            .expect("registered");
        changes.changed().await.expect("open");
        assert_eq!(
            changes.borrow_and_update()[0].health,
            HealthStatus::Unhealthy
        );
        let evictor = registry.spawn_evictor(Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(11)).await;
        changes.changed().await.expect("open");
        assert!(changes.borrow().is_empty(), "the evictor told the watcher");
        evictor.abort();
    }
}
