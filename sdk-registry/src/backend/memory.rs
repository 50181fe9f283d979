//! The embedded registry, and the table the registry server keeps in memory.
//!
//! Costs are per service, never per registry: each service has its own lock, and the map of
//! services is only read-locked on the way to one. A heartbeat touches one entry and tells
//! nobody; only a change of membership, address or health publishes a new snapshot (and takes
//! a new version). Expiry is a timer queue (a binary heap of deadlines): a heartbeat does not
//! touch it; when a deadline comes due, the entry is either gone, evicted, or queued again at
//! its current deadline, so each live instance costs one queue operation per TTL whatever
//! its heartbeat rate.
//!
//! Why not `tokio_util::time::DelayQueue`: it wants one owner polling it, and a deadline per
//! heartbeat; the lazy re-queue above needs neither.

use sdk_base::sync::Unpoisoned as _;
use sdk_base::sync::UnpoisonedRw as _;
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
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
/// registry.register(ServiceInstance::new("orders", ("127.0.0.1", 8081)).with_id("o-1")).await?;
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
    /// Evict what is due at each call (the embedded default). The registry server evicts
    /// itself, after the removal is on disk.
    evict_on_access: bool,
    services: RwLock<HashMap<String, Arc<Shard>>>,
    expiry: Mutex<BinaryHeap<Reverse<Due>>>,
    /// The last version taken by any service: versions are unique and only grow, so a
    /// service forgotten and seen again never repeats one.
    version: AtomicU64,
    /// When unused services were last forgotten (on-access mode sweeps once a second).
    last_sweep: Mutex<Instant>,
    /// The version of the last change to any service, for those who follow them all (the
    /// dashboard's stream); sent to only while someone does.
    any_change: watch::Sender<u64>,
}

/// One service: its instances behind a lock of its own, and the channel its watchers read.
#[derive(Debug)]
struct Shard {
    state: Mutex<ShardState>,
    changes: watch::Sender<Snapshot>,
    /// The instances as JSON at one version, made once and shared by every watcher.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    encoded: Mutex<Option<(u64, bytes::Bytes)>>,
}

#[derive(Debug)]
struct ShardState {
    instances: BTreeMap<String, Entry>,
    version: u64,
    /// The version of the snapshot in the channel: a change made while nobody watches
    /// publishes nothing, and the next watcher gets a fresh snapshot.
    published: u64,
}

#[derive(Debug)]
struct Entry {
    /// As of the last change (shared with the snapshots that hold it).
    record: Arc<InstanceRecord>,
    /// The last heartbeat, kept out of the shared record so a heartbeat copies nothing.
    last_heartbeat_ms: u64,
    expires: Instant,
}

impl Entry {
    /// The record with the latest heartbeat time.
    fn current(&self) -> InstanceRecord {
        let mut record = (*self.record).clone();
        record.last_heartbeat_ms = self.last_heartbeat_ms;
        record
    }
}

/// A deadline in the expiry queue.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    service: String,
    id: String,
}

impl Shard {
    /// A new service's shard, at the registry's current version (so a version it
    /// answers never repeats one an earlier shard of the same name answered).
    fn new(version: u64) -> Self {
        Shard {
            state: Mutex::new(ShardState {
                instances: BTreeMap::new(),
                version,
                published: version,
            }),
            changes: watch::Sender::new(Arc::new(Vec::new())),
            encoded: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShardState> {
        self.state.locked()
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
        Self::build(ttl, true, 0)
    }

    /// The server's table: nothing is evicted until the server says so
    /// ([`take_expired`](Self::take_expired), then [`remove`](Self::remove)), and versions
    /// start after `first_version`.
    #[cfg(feature = "server")]
    pub(crate) fn evicting_manually(ttl: Duration, first_version: u64) -> Self {
        Self::build(ttl, false, first_version)
    }

    fn build(ttl: Duration, evict_on_access: bool, first_version: u64) -> Self {
        InMemoryBackend {
            inner: Arc::new(Inner {
                ttl,
                evict_on_access,
                services: RwLock::new(HashMap::new()),
                expiry: Mutex::new(BinaryHeap::new()),
                version: AtomicU64::new(first_version),
                last_sweep: Mutex::new(Instant::now()),
                any_change: watch::Sender::new(first_version),
            }),
        }
    }

    /// The heartbeat TTL.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Now plus the TTL, saturating (a TTL of years must not overflow the clock).
    fn deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.inner.ttl)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
    }

    fn shard(&self, service: &str) -> Option<Arc<Shard>> {
        let services = self.inner.services.read_locked();
        services.get(service).cloned()
    }

    /// Every service's shard (taken under the map's read lock, then used without it).
    #[cfg(feature = "server")]
    fn shards(&self) -> Vec<Arc<Shard>> {
        let services = self.inner.services.read_locked();
        services.values().cloned().collect()
    }

    fn shard_or_insert(&self, service: &str) -> Arc<Shard> {
        if let Some(shard) = self.shard(service) {
            return shard;
        }
        let mut services = self.inner.services.write_locked();
        services
            .entry(service.to_owned())
            .or_insert_with(|| Arc::new(Shard::new(self.inner.version.load(Ordering::Acquire))))
            .clone()
    }

    fn schedule(&self, at: Instant, service: &str, id: &str) {
        self.inner.expiry.locked().push(Reverse(Due {
            at,
            service: service.to_owned(),
            id: id.to_owned(),
        }));
    }

    /// Gives the shard a new version and its watchers (if any) a new snapshot.
    fn publish(&self, shard: &Shard, state: &mut ShardState) {
        state.version = self.inner.version.fetch_add(1, Ordering::AcqRel) + 1;
        if shard.changes.receiver_count() > 0 {
            Self::send_snapshot(shard, state);
        }
        if self.inner.any_change.receiver_count() > 0 {
            self.inner.any_change.send_replace(state.version);
        }
    }

    /// Puts the current instances in the shard's channel.
    fn send_snapshot(shard: &Shard, state: &mut ShardState) {
        let snapshot: Vec<Arc<InstanceRecord>> =
            state.instances.values().map(|e| e.record.clone()).collect();
        shard.changes.send_replace(Arc::new(snapshot));
        state.published = state.version;
    }

    /// The newest version any service has taken.
    #[cfg(feature = "server")]
    pub(crate) fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// A channel that changes whenever any service does (its value: the version of the
    /// change).
    #[cfg(feature = "server")]
    pub(crate) fn watch_all(&self) -> watch::Receiver<u64> {
        self.inner.any_change.subscribe()
    }

    /// Every service that has instances, by name, with its instances and their latest
    /// heartbeat times (one service's lock at a time).
    #[cfg(feature = "server")]
    pub(crate) fn everything(&self) -> Vec<(String, Vec<InstanceRecord>)> {
        let services: Vec<(String, Arc<Shard>)> = {
            let services = self.inner.services.read_locked();
            services
                .iter()
                .map(|(name, shard)| (name.clone(), shard.clone()))
                .collect()
        };
        let mut all: Vec<(String, Vec<InstanceRecord>)> = services
            .into_iter()
            .filter_map(|(name, shard)| {
                let state = shard.lock();
                let records: Vec<InstanceRecord> =
                    state.instances.values().map(Entry::current).collect();
                (!records.is_empty()).then_some((name, records))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// A service's version and its instances as a JSON array, serialized once per version
    /// and shared by every long poll and event stream that sends it. Heartbeat times in it
    /// are those of the last change.
    #[cfg(feature = "server")]
    pub(crate) fn encoded(&self, service: &str) -> (u64, bytes::Bytes) {
        let Some(shard) = self.shard(service) else {
            return (self.version(), bytes::Bytes::from_static(b"[]"));
        };
        let state = shard.lock();
        let mut cache = shard.encoded.locked();
        if let Some((version, bytes)) = &*cache {
            if *version == state.version {
                return (*version, bytes.clone());
            }
        }
        let records: Vec<&InstanceRecord> = state.instances.values().map(|e| &*e.record).collect();
        // Serializing strings and numbers cannot fail.
        let bytes = bytes::Bytes::from(serde_json::to_vec(&records).unwrap_or_default());
        *cache = Some((state.version, bytes.clone()));
        (state.version, bytes)
    }

    /// The record of one instance, if registered.
    #[cfg(feature = "server")]
    pub(crate) fn record(&self, service: &str, id: &str) -> Option<Arc<InstanceRecord>> {
        let shard = self.shard(service)?;
        let state = shard.lock();
        state.instances.get(id).map(|e| e.record.clone())
    }

    /// The instances that declare a health-check path: (service, id, URL to probe). Nothing
    /// is cloned for the others.
    #[cfg(feature = "server")]
    pub(crate) fn probe_targets(&self) -> Vec<(String, String, String)> {
        let shards = self.shards();
        let mut targets = Vec::new();
        for shard in shards {
            let state = shard.lock();
            for entry in state.instances.values() {
                let instance = &entry.record.instance;
                if let Some(path) = &instance.health_check_path {
                    targets.push((
                        instance.service.clone(),
                        instance.id.clone(),
                        format!("{}{path}", instance.url()),
                    ));
                }
            }
        }
        targets
    }

    /// Evicts every instance whose TTL has passed, and tells the watchers; returns how many
    /// were evicted. The embedded registry also does this at each call; run
    /// [`spawn_evictor`](Self::spawn_evictor) so watchers hear about expiries without one.
    /// Services with no instance and no watcher left are forgotten, so watching made-up names
    /// cannot grow the registry for good.
    pub fn evict_expired(&self) -> usize {
        let expired = self.take_expired();
        let evicted = expired
            .iter()
            .filter(|(service, id)| self.remove(service, id))
            .count();
        self.forget_unused();
        evicted
    }

    /// The instances whose deadline has passed (the ones that heartbeated since are queued
    /// again at their new deadline); the caller removes them with [`remove`](Self::remove).
    /// Each is looked at again a second later, so none is forgotten if the caller does not.
    pub(crate) fn take_expired(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut queue = self.inner.expiry.locked();
            while queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
                if let Some(Reverse(d)) = queue.pop() {
                    due.push(d);
                }
            }
        }
        let mut expired = Vec::new();
        for d in due {
            let expires = self
                .shard(&d.service)
                .and_then(|shard| shard.lock().instances.get(&d.id).map(|e| e.expires));
            match expires {
                Some(at) if at <= now => {
                    // Looked at again in a second, in case the caller does not remove it
                    // (its removal failed to save, or it was registered again meanwhile).
                    self.schedule(now + Duration::from_secs(1), &d.service, &d.id);
                    expired.push((d.service, d.id));
                }
                Some(at) => self.schedule(at, &d.service, &d.id),
                None => {} // deregistered since
            }
        }
        expired
    }

    /// True if the instance is registered and past its deadline.
    #[cfg(feature = "server")]
    pub(crate) fn is_expired(&self, service: &str, id: &str) -> bool {
        self.shard(service).is_some_and(|shard| {
            let state = shard.lock();
            state
                .instances
                .get(id)
                .is_some_and(|e| e.expires <= Instant::now())
        })
    }

    /// Removes an instance and tells the watchers; false if it was not there.
    pub(crate) fn remove(&self, service: &str, id: &str) -> bool {
        let Some(shard) = self.shard(service) else {
            return false;
        };
        let mut state = shard.lock();
        let removed = state.instances.remove(id).is_some();
        if removed {
            self.publish(&shard, &mut state);
        }
        removed
    }

    /// Forgets services with no instance and no watcher.
    pub(crate) fn forget_unused(&self) {
        *self.inner.last_sweep.locked() = Instant::now();
        let mut services = self.inner.services.write_locked();
        services.retain(|_, shard| {
            !shard.lock().instances.is_empty() || shard.changes.receiver_count() > 0
        });
    }

    /// The embedded registry's housekeeping, at each call: evict what is due, and once a
    /// second forget unused services.
    fn on_access(&self) {
        if !self.inner.evict_on_access {
            return;
        }
        for (service, id) in self.take_expired() {
            self.remove(&service, &id);
        }
        let sweep_due = self
            .inner
            .last_sweep
            .lock()
            .is_ok_and(|last| last.elapsed() >= Duration::from_secs(1));
        if sweep_due {
            self.forget_unused();
        }
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

    /// Registers or refreshes `instance` (already validated); returns true if watchers were
    /// told (the instance is new, or its address or metadata changed).
    pub(crate) fn upsert(&self, instance: ServiceInstance, health: Option<HealthStatus>) -> bool {
        let expires = self.deadline();
        let shard = self.shard_or_insert(&instance.service);
        let mut state = shard.lock();
        let (service, id) = (instance.service.clone(), instance.id.clone());
        let now_ms = unix_ms();
        let changed = match state.instances.get_mut(&id) {
            Some(entry) if entry.record.instance == instance => {
                entry.expires = expires;
                entry.last_heartbeat_ms = now_ms;
                match health {
                    Some(health) if health != entry.record.health => {
                        entry.record = Arc::new(InstanceRecord {
                            health,
                            ..entry.current()
                        });
                        true
                    }
                    _ => false,
                }
            }
            previous => {
                let is_new = previous.is_none();
                let record = Arc::new(InstanceRecord {
                    instance,
                    health: health.unwrap_or_default(),
                    last_heartbeat_ms: now_ms,
                });
                let entry = Entry {
                    record,
                    last_heartbeat_ms: now_ms,
                    expires,
                };
                state.instances.insert(id.clone(), entry);
                if is_new {
                    self.schedule(expires, &service, &id);
                }
                true
            }
        };
        if changed {
            self.publish(&shard, &mut state);
        }
        changed
    }

    /// Sets an instance's health; `Ok(true)` if it changed (and watchers were told).
    pub(crate) fn update_health(
        &self,
        service: &str,
        id: &str,
        health: HealthStatus,
    ) -> Result<bool, RegistryError> {
        let shard = self.shard(service).ok_or_else(|| unknown(service, id))?;
        let mut state = shard.lock();
        let entry = state
            .instances
            .get_mut(id)
            .ok_or_else(|| unknown(service, id))?;
        if entry.record.health == health {
            return Ok(false);
        }
        entry.record = Arc::new(InstanceRecord {
            health,
            ..entry.current()
        });
        self.publish(&shard, &mut state);
        Ok(true)
    }

    /// Keeps an instance alive for another TTL: one entry touched, nobody told. An instance
    /// past its deadline is gone, even if the evictor has not removed it yet.
    fn touch(&self, service: &str, id: &str) -> Result<(), RegistryError> {
        let shard = self.shard(service).ok_or_else(|| unknown(service, id))?;
        let mut state = shard.lock();
        let entry = state
            .instances
            .get_mut(id)
            .filter(|e| e.expires > Instant::now())
            .ok_or_else(|| unknown(service, id))?;
        entry.expires = self.deadline();
        entry.last_heartbeat_ms = unix_ms();
        Ok(())
    }
}

fn unknown(service: &str, id: &str) -> RegistryError {
    RegistryError::UnknownInstance {
        service: service.to_owned(),
        id: id.to_owned(),
    }
}

impl RegistryBackend for InMemoryBackend {
    fn register(&self, instance: ServiceInstance) -> BoxFuture<'_, Result<(), RegistryError>> {
        self.on_access();
        let result = instance.validate().map(|()| {
            self.upsert(instance, None);
        });
        Box::pin(std::future::ready(result))
    }

    fn deregister<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.on_access();
        let result = if self.remove(service, id) {
            Ok(())
        } else {
            Err(unknown(service, id))
        };
        Box::pin(std::future::ready(result))
    }

    fn heartbeat<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.on_access();
        Box::pin(std::future::ready(self.touch(service, id)))
    }

    fn set_health<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
        health: HealthStatus,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.on_access();
        let result = self.update_health(service, id, health).map(drop);
        Box::pin(std::future::ready(result))
    }

    fn instances<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceRecord>, RegistryError>> {
        self.on_access();
        let records = self.shard(service).map_or_else(Vec::new, |shard| {
            let state = shard.lock();
            state.instances.values().map(Entry::current).collect()
        });
        Box::pin(std::future::ready(Ok(records)))
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<String>, RegistryError>> {
        self.on_access();
        let mut names: Vec<String> = {
            let services = self.inner.services.read_locked();
            services
                .iter()
                .filter(|(_, shard)| !shard.lock().instances.is_empty())
                .map(|(name, _)| name.clone())
                .collect()
        };
        names.sort();
        Box::pin(std::future::ready(Ok(names)))
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Snapshot>, RegistryError>> {
        self.on_access();
        let shard = self.shard_or_insert(service);
        let mut state = shard.lock();
        if state.published != state.version {
            Self::send_snapshot(&shard, &mut state);
        }
        let receiver = shard.changes.subscribe();
        drop(state);
        Box::pin(std::future::ready(Ok(receiver)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, port: u16) -> ServiceInstance {
        ServiceInstance::new("orders", ("127.0.0.1", port)).with_id(id)
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
            .register(ServiceInstance::new("orders", ("evil host/", 80)).with_id("c"))
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
        let entries = |r: &InMemoryBackend| r.inner.services.read().map_or(0, |s| s.len());
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

    #[tokio::test(start_paused = true)]
    async fn heartbeats_and_unchanged_registrations_publish_nothing() {
        let registry = InMemoryBackend::new();
        registry.register(instance("a", 1)).await.expect("valid");
        let mut changes = registry.watch("orders").await.expect("ok");
        changes.borrow_and_update();
        registry.heartbeat("orders", "a").await.expect("alive");
        registry.register(instance("a", 1)).await.expect("the same");
        registry
            .set_health("orders", "a", HealthStatus::Unknown)
            .await
            .expect("unchanged");
        assert!(!changes.has_changed().expect("open"), "nothing changed");
        registry.register(instance("a", 2)).await.expect("moved");
        assert!(
            changes.has_changed().expect("open"),
            "a new address is a change"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_is_queued_and_every_eviction_is_published() {
        let registry = InMemoryBackend::with_ttl(Duration::from_secs(10));
        registry.register(instance("a", 1)).await.expect("valid");
        registry.register(instance("b", 2)).await.expect("valid");
        let mut changes = registry.watch("orders").await.expect("ok");
        changes.borrow_and_update();
        tokio::time::advance(Duration::from_secs(6)).await;
        registry.heartbeat("orders", "a").await.expect("alive");
        tokio::time::advance(Duration::from_secs(5)).await;
        // b's deadline passed: the next call evicts it, and the watcher hears of it.
        let records = registry.instances("orders").await.expect("ok");
        assert_eq!(records.len(), 1);
        assert!(
            changes.has_changed().expect("open"),
            "the eviction was published"
        );
        assert_eq!(changes.borrow_and_update().len(), 1);
        // a was queued again at its new deadline, not evicted at its first one.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(registry.evict_expired(), 1);
        assert!(registry.instances("orders").await.expect("ok").is_empty());
        assert!(
            registry.heartbeat("orders", "a").await.is_err(),
            "gone once expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_do_not_grow_the_expiry_queue() {
        let registry = InMemoryBackend::with_ttl(Duration::from_secs(30));
        for i in 0..100 {
            registry
                .register(instance(&format!("i{i}"), 1))
                .await
                .expect("valid");
        }
        for _ in 0..50 {
            tokio::time::advance(Duration::from_secs(1)).await;
            for i in 0..100 {
                registry
                    .heartbeat("orders", &format!("i{i}"))
                    .await
                    .expect("alive");
            }
        }
        let queued = registry.inner.expiry.lock().map_or(0, |q| q.len());
        assert_eq!(queued, 100, "one deadline per instance");
        assert_eq!(registry.instances("orders").await.expect("ok").len(), 100);
    }
}
