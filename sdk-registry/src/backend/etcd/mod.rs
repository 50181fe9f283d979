//! The etcd backend: instances as keys under a prefix, kept alive by leases, followed with
//! etcd watches.

mod gateway;

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use http_body_util::BodyStream;
use serde_json::json;
use tokio::sync::watch;

use self::gateway::{encode, prefix_end, Gateway, GatewayError, KeyValue, WatchMessage};
use super::{
    client::default_tls, name_segment, unix_ms, BoxFuture, RegistryBackend, Snapshot, WatchProblems,
};
use crate::{backoff::Reconnect, HealthStatus, InstanceRecord, RegistryError, ServiceInstance};

/// How many times a health update is retried when another writer got in between.
const CAS_ATTEMPTS: usize = 8;

/// The largest single watch message buffered (a compacted history replay can be big).
const MAX_WATCH_MESSAGE: usize = 64 * 1024 * 1024;

/// A registry kept in etcd, for fleets that outgrow one registry server.
///
/// Each instance is one key, `{prefix}{service}/{id}` (prefix `/sdk-registry/services/` by
/// default), whose value is the [`InstanceRecord`] as JSON. Registration attaches the key to
/// a lease of the TTL (default 90 s); [`heartbeat`](RegistryBackend::heartbeat) renews the
/// lease, and when heartbeats stop etcd deletes the key itself, so no evictor runs anywhere.
/// [`watch`](RegistryBackend::watch) follows an etcd watch on the service's prefix; if the
/// stream breaks, the last snapshot stays and the set is read again once etcd answers.
///
/// `last_heartbeat_ms` is the time of the last write to the record (registration or health
/// change): renewals only touch the lease, so that heartbeats cost etcd no writes and wake
/// no watchers.
///
/// ```no_run
/// use std::time::Duration;
/// use sdk_registry::{EtcdBackend, RegistryBackend, ServiceInstance};
///
/// # async fn run() -> Result<(), sdk_registry::RegistryError> {
/// let etcd = EtcdBackend::new(&["http://127.0.0.1:2379".to_owned()])?
///     .with_ttl(Duration::from_secs(30))
///     .with_prefix("/shop/services/");
/// etcd.register(ServiceInstance::new("orders", ("10.0.0.7", 8080)).with_id("o-1")).await?;
/// let orders = etcd.instances("orders").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EtcdBackend {
    gateway: Arc<Gateway>,
    prefix: Arc<str>,
    ttl: Duration,
    problems: WatchProblems,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("gateway", &self.gateway)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl EtcdBackend {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = super::DEFAULT_ETCD_PREFIX;

    /// A backend on the etcd cluster at `endpoints` (each `http://host:port`, or
    /// `https://host:port` trusting the Mozilla roots; when one cannot be reached the next is
    /// tried).
    pub fn new(endpoints: &[String]) -> Result<Self, RegistryError> {
        Self::with_tls(endpoints, default_tls()?)
    }

    /// [`new`](Self::new) with the given rustls configuration for `https://` endpoints (a
    /// private CA, client certificates).
    pub fn with_tls(
        endpoints: &[String],
        tls: rustls::ClientConfig,
    ) -> Result<Self, RegistryError> {
        Ok(EtcdBackend {
            gateway: Arc::new(Gateway::new(endpoints, tls, Duration::from_secs(5))?),
            prefix: Self::DEFAULT_PREFIX.into(),
            ttl: Duration::from_secs(90),
            problems: WatchProblems::default(),
        })
    }

    /// Authenticates as `user` with `password` (etcd's user/password authentication). The
    /// auth token is fetched on first use and fetched again when etcd says it has expired;
    /// neither the password nor the token is ever printed.
    #[must_use]
    pub fn with_credentials(mut self, user: &str, password: &str) -> Self {
        self.gateway = Arc::new(self.gateway.with_credentials(user, password));
        self
    }

    /// Instances expire `ttl` after their last heartbeat (default 90 s; etcd rounds up to its
    /// minimum lease, about 2 s, and to whole seconds).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Keeps instances under `prefix` (a `/` is added if it does not end with one), so
    /// several registries can share a cluster.
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.prefix = prefix.into();
        self
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn service_prefix(&self, service: &str) -> Result<Vec<u8>, RegistryError> {
        Ok(format!("{}{}/", self.prefix, name_segment(service)?).into_bytes())
    }

    fn key(&self, service: &str, id: &str) -> Result<Vec<u8>, RegistryError> {
        let mut key = self.service_prefix(service)?;
        key.extend_from_slice(name_segment(id)?.as_bytes());
        Ok(key)
    }

    /// The key's entry, if any.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, RegistryError> {
        // A range whose end is the key plus a zero byte holds exactly that key.
        let mut end = key.to_vec();
        end.push(0);
        let range = self.gateway.range(key, &end, false).await?;
        Ok(range.kvs.into_iter().next())
    }

    /// A service's instances and the revision they were read at.
    async fn list(&self, service: &str) -> Result<(Records, i64), RegistryError> {
        let prefix = self.service_prefix(service)?;
        let range = self
            .gateway
            .range(&prefix, &prefix_end(&prefix), false)
            .await?;
        let records = range
            .kvs
            .into_iter()
            .filter_map(|kv| Some((kv.key.0, decode(&kv.value.0)?)))
            .collect();
        Ok((records, range.header.revision.0))
    }

    /// Follows `service` from after `revision`, publishing to `changes` until nobody watches.
    /// `synced` is the set and the revision it was read at, if it could be read.
    async fn follow(
        self,
        service: String,
        mut synced: Option<(Records, i64)>,
        changes: watch::Sender<Snapshot>,
    ) {
        let mut reconnect = Reconnect::new();
        loop {
            if let Some((records, revision)) = &mut synced {
                let started = tokio::time::Instant::now();
                tokio::select! {
                    _ = self.stream(&service, records, revision, &changes) => {}
                    () = changes.closed() => return,
                }
                // A stream that lived a while was a success: start the backoff over.
                if started.elapsed() > Duration::from_secs(10) {
                    reconnect.succeeded();
                }
            }
            // The stream broke (etcd restarted, the history was compacted) or etcd was not
            // reachable: read the whole set again once it answers, then watch from there,
            // after a jittered pause so a fleet of followers does not return in lockstep.
            let wait = reconnect.failed();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = changes.closed() => return,
            }
            synced = match self.list(&service).await {
                Ok(synced) => {
                    self.problems.set(&service, None);
                    Some(synced)
                }
                Err(e) => {
                    if reconnect.failures() == 1 {
                        tracing::warn!(%service, error = %e, "lost etcd; keeping the last known instances");
                    }
                    self.problems.set(&service, Some(e));
                    None
                }
            };
            if let Some((records, _)) = &synced {
                publish(&changes, records);
            }
        }
    }

    /// One watch stream: applies its events to `records` until it ends or fails.
    async fn stream(
        &self,
        service: &str,
        records: &mut Records,
        revision: &mut i64,
        changes: &watch::Sender<Snapshot>,
    ) -> Result<(), GatewayError> {
        let prefix = self
            .service_prefix(service)
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        let request = json!({ "create_request": {
            "key": encode(&prefix),
            "range_end": encode(&prefix_end(&prefix)),
            "start_revision": (*revision + 1).to_string(),
        }});
        let response = self.gateway.send("/v3/watch", &request).await?;
        if !response.status().is_success() {
            return Err(GatewayError::Unavailable(format!(
                "etcd watch: {}",
                response.status()
            )));
        }
        let mut frames = BodyStream::new(response.into_body());
        let mut buffer = Vec::new();
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(|e| GatewayError::Unavailable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            buffer.extend_from_slice(&data);
            // The gateway writes one JSON message after another; take every whole one.
            let mut messages = serde_json::Deserializer::from_slice(&buffer).into_iter();
            let mut consumed = 0;
            while let Some(Ok(message)) = messages.next() {
                consumed = messages.byte_offset();
                let WatchMessage { result, error } = message;
                if let Some(error) = error {
                    return Err(GatewayError::Unavailable(format!("etcd watch: {error}")));
                }
                let Some(result) = result else { continue };
                if result.canceled {
                    return Err(GatewayError::Unavailable("etcd watch cancelled".into()));
                }
                if result.events.is_empty() {
                    continue; // the creation notice or a progress report
                }
                for event in result.events {
                    match (event.is_delete(), decode(&event.kv.value.0)) {
                        (false, Some(record)) => records.insert(event.kv.key.0, record),
                        _ => records.remove(&event.kv.key.0),
                    };
                }
                *revision = (*revision).max(result.header.revision.0);
                publish(changes, records);
            }
            buffer.drain(..consumed);
            if buffer.len() > MAX_WATCH_MESSAGE {
                return Err(GatewayError::Unavailable(
                    "etcd watch message too large".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A service's records by key (so snapshots come out in id order).
type Records = BTreeMap<Vec<u8>, InstanceRecord>;

/// A record as stored; a value some other writer left in an unknown shape is skipped.
fn decode(value: &[u8]) -> Option<InstanceRecord> {
    serde_json::from_slice(value).ok()
}

fn publish(changes: &watch::Sender<Snapshot>, records: &Records) {
    let snapshot: Vec<Arc<InstanceRecord>> = records.values().cloned().map(Arc::new).collect();
    changes.send_if_modified(|current| {
        if **current == snapshot {
            return false;
        }
        *current = Arc::new(snapshot);
        true
    });
}

fn unknown(service: &str, id: &str) -> RegistryError {
    RegistryError::UnknownInstance {
        service: service.to_owned(),
        id: id.to_owned(),
    }
}

fn encode_record(record: &InstanceRecord) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(record).map_err(|e| RegistryError::Invalid {
        field: "instance",
        reason: e.to_string(),
    })
}

impl RegistryBackend for EtcdBackend {
    fn watch_problem(&self, service: &str) -> Option<RegistryError> {
        self.problems.get(service)
    }

    fn register(&self, instance: ServiceInstance) -> BoxFuture<'_, Result<(), RegistryError>> {
        Box::pin(async move {
            instance.validate()?;
            let key = self.key(&instance.service, &instance.id)?;
            // As in memory: re-registering the same instance keeps its health.
            let health = self
                .get(&key)
                .await?
                .and_then(|kv| decode(&kv.value.0))
                .filter(|record| record.instance == instance)
                .map_or(HealthStatus::Unknown, |record| record.health);
            let record = InstanceRecord {
                instance,
                health,
                last_heartbeat_ms: unix_ms(),
            };
            let gateway = &self.gateway;
            let lease = gateway.grant(self.ttl).await?;
            let previous = gateway.put(&key, &encode_record(&record)?, lease).await?;
            // The previous registration's lease holds nothing now; let it go at once.
            if let Some(previous) = previous.filter(|kv| kv.lease.0 != 0 && kv.lease.0 != lease) {
                let _ = gateway.revoke(previous.lease.0).await;
            }
            Ok(())
        })
    }

    fn deregister<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let key = self.key(service, id)?;
            let deleted = self.gateway.delete(&key).await?;
            let deleted = deleted.ok_or_else(|| unknown(service, id))?;
            if deleted.lease.0 != 0 {
                self.gateway.revoke(deleted.lease.0).await?;
            }
            Ok(())
        })
    }

    fn heartbeat<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let key = self.key(service, id)?;
            let kv = self.get(&key).await?.ok_or_else(|| unknown(service, id))?;
            if kv.lease.0 == 0 {
                return Ok(()); // written without a lease: it never expires
            }
            match self.gateway.keep_alive(kv.lease.0).await {
                Err(GatewayError::NotFound) => Err(unknown(service, id)),
                other => Ok(other?),
            }
        })
    }

    fn set_health<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
        health: HealthStatus,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let key = self.key(service, id)?;
            for _ in 0..CAS_ATTEMPTS {
                let kv = self.get(&key).await?.ok_or_else(|| unknown(service, id))?;
                let Some(mut record) = decode(&kv.value.0) else {
                    return Err(unknown(service, id));
                };
                if record.health == health {
                    return Ok(());
                }
                record.health = health;
                record.last_heartbeat_ms = unix_ms();
                // Write only if nobody changed the record since it was read, keeping its lease.
                let value = encode_record(&record)?;
                if self
                    .gateway
                    .put_if_unchanged(&key, &value, kv.mod_revision.0, kv.lease.0 != 0)
                    .await?
                {
                    return Ok(());
                }
            }
            Err(RegistryError::Unavailable(format!(
                "etcd: `{service}/{id}` kept changing; health not recorded"
            )))
        })
    }

    fn instances<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceRecord>, RegistryError>> {
        Box::pin(async move {
            let (records, _) = self.list(service).await?;
            Ok(records.into_values().collect())
        })
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let prefix = self.prefix.as_bytes();
            let range = self
                .gateway
                .range(prefix, &prefix_end(prefix), true)
                .await?;
            let mut names: Vec<String> = range
                .kvs
                .iter()
                .filter_map(|kv| {
                    let rest = kv.key.0.strip_prefix(prefix)?;
                    let name = rest.split(|&b| b == b'/').next()?;
                    String::from_utf8(name.to_vec()).ok()
                })
                .filter(|name| name_segment(name).is_ok())
                .collect();
            names.dedup(); // keys come sorted
            Ok(names)
        })
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Snapshot>, RegistryError>> {
        Box::pin(async move {
            let service = name_segment(service)?.to_owned();
            // If etcd is down now, start empty and fill in once it answers.
            let synced = match self.list(&service).await {
                Ok(synced) => Some(synced),
                Err(e) => {
                    // The follower reports and retries; the watch starts empty meanwhile.
                    self.problems.set(&service, Some(e));
                    None
                }
            };
            let snapshot: Vec<Arc<InstanceRecord>> = synced
                .iter()
                .flat_map(|(records, _)| records.values().cloned().map(Arc::new))
                .collect();
            let (changes, receiver) = watch::channel(Arc::new(snapshot));
            tokio::spawn(self.clone().follow(service, synced, changes));
            Ok(receiver)
        })
    }
}
