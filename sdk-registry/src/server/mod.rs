//! The registry server (feature `server`): a REST API over the registry's in-memory table,
//! with heartbeat TTL eviction, durable state in SQLite, and bearer-token writes.
//!
//! | method | path | |
//! | --- | --- | --- |
//! | `POST` | `/v1/instances` | register (JSON `ServiceInstance`) → 201 |
//! | `DELETE` | `/v1/services/{service}/instances/{id}` | deregister → 204 |
//! | `PUT` | `/v1/services/{service}/instances/{id}/heartbeat` | heartbeat → 204 |
//! | `PUT` | `/v1/services/{service}/instances/{id}/health` | record health (`{"health": "unhealthy"}`) → 204 |
//! | `GET` | `/v1/services` | service names |
//! | `GET` | `/v1/services/{service}/instances` | instances with health |
//! | `GET` | `/v1/services/{service}/watch?after=N&wait=30` | long poll: answers when the service's version passes `N` (or after `wait` seconds) |
//! | `GET` | `/v1/services/{service}/events` | server-sent events: the instances, again after every change |
//! | `GET` | `/v1/events` | server-sent events: every service and its instances, after changes and every 5 s (the dashboard's feed) |
//! | `GET` | `/` | the dashboard (HTML) for a browser; what the server is (JSON) for anyone else |
//! | `GET` | `/health` | liveness, and whether writes are open |
//!
//! Every error is JSON `{"error": "..."}` with a 4xx or 5xx status naming the problem.
//!
//! A write is answered only once it is saved, and is visible to readers and watchers only
//! from then on; a write that could not be saved answers 500 and changes nothing
//! (one writer task, group-committing). Versions are per service and carry the server's epoch (its starts on
//! this data file), so they never go backwards across a restart.

mod api;
mod dashboard;
mod events;
mod health;
mod store;
mod writer;

pub use self::health::HealthChecks;
pub use sdk_server::{metrics_recorder, serve, shutdown_signal, tls, App, Limits};

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use self::{
    store::Store,
    writer::{Op, Storage, Writer},
};
use crate::InMemoryBackend;

use self::api::ServicePath;
pub use self::api::{json_errors, router, ApiError};

/// How the server is set up.
#[derive(Clone)]
pub struct ServerConfig {
    /// Heartbeat TTL (default 90 s).
    pub ttl: Duration,
    /// The SQLite data file (default: none, state is lost on restart).
    pub data: Option<PathBuf>,
    /// Bearer token required for writes (default: none, which [`Registry::open`] refuses
    /// unless `open_writes` is set).
    pub token: Option<String>,
    /// Accept writes without a token (default: false). The server warns at start and
    /// reports it on `/health`.
    pub open_writes: bool,
    /// Require the token for reads too (default: false).
    pub protect_reads: bool,
    /// Largest request body (default 64 KiB).
    pub max_body: usize,
    /// Time a request body has to arrive (default 30 s).
    pub body_timeout: Duration,
    /// Where `GET /metrics` renders from (default: none, and `/metrics` answers 404). The
    /// binary installs a Prometheus recorder and passes its handle.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("ttl", &self.ttl)
            .field("data", &self.data)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("open_writes", &self.open_writes)
            .field("protect_reads", &self.protect_reads)
            .field("max_body", &self.max_body)
            .field("body_timeout", &self.body_timeout)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ttl: Duration::from_secs(90),
            data: None,
            token: None,
            open_writes: false,
            protect_reads: false,
            max_body: 64 * 1024,
            body_timeout: Duration::from_secs(30),
            metrics: None,
        }
    }
}

/// The longest TTL accepted (a week): longer ones are a mistake, and would overflow clocks.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Bits of a version below the epoch: a run may make 2^32 changes, and versions stay below
/// 2^53, so JavaScript reads them exactly.
const EPOCH_SHIFT: u32 = 32;
const EPOCH_MASK: u64 = (1 << 21) - 1;
/// Counted starts use the lower half of the epochs (a million starts); a start that could
/// not be counted takes one from the upper half.
const COUNTED_EPOCHS: u64 = EPOCH_MASK >> 1;

/// The server's state: the table, the one writer, the settings.
#[derive(Debug)]
pub struct Registry {
    backend: InMemoryBackend,
    writer: Writer,
    /// Whether the data file takes writes.
    storage: Arc<Storage>,
    config: ServerConfig,
    epoch: u64,
    /// Set by [`close`](Registry::close): open watches and event streams end.
    closing: tokio::sync::watch::Sender<bool>,
    /// The services `/metrics` reported instances of last time: one that has gone since is
    /// reported once more, at zero, rather than left at its last count.
    pub(super) reported: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The all-services JSON of `GET /v1/events`: its version, when it was made, the bytes.
    everything: std::sync::Mutex<Option<(u64, tokio::time::Instant, bytes::Bytes)>>,
}

impl Registry {
    /// A registry restored from the data file, if there is one. Refuses an empty token, no
    /// token without `open_writes`, a TTL of zero or over [`MAX_TTL`], and a data file that
    /// another server holds.
    pub async fn open(config: ServerConfig) -> io::Result<Arc<Registry>> {
        check(&config)?;
        let (store, loaded) = match &config.data {
            Some(path) => {
                let (store, loaded) = Store::open(path).await?;
                (Some(store), Some(loaded))
            }
            None => (None, None),
        };
        let random = (u64::from(std::process::id()) ^ crate::backend::unix_ms()) & EPOCH_MASK;
        let storage = Arc::new(Storage::default());
        let epoch = match loaded.as_ref().map(|l| l.epoch) {
            Some(Some(counted)) => counted & COUNTED_EPOCHS,
            // The start could not be counted (the disk is full): an epoch from the half no
            // counted start reaches, so a follower never mistakes this run's versions for
            // a later run's, and takes the whole set when either starts.
            Some(None) => {
                storage.set_full(true);
                random | (COUNTED_EPOCHS + 1)
            }
            // No file: a random epoch, so a follower of the last run still takes the new set.
            None => random,
        }
        .max(1); // never 0, the epoch of a follower that has seen nothing yet
        let backend = InMemoryBackend::evicting_manually(config.ttl, epoch << EPOCH_SHIFT);
        for (instance, health) in loaded.map(|l| l.instances).unwrap_or_default() {
            match instance.validate() {
                Ok(()) => {
                    backend.upsert(instance, Some(health));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an invalid instance in the data file")
                }
            }
        }
        if config.open_writes && config.token.is_none() {
            tracing::warn!("writes are open: anyone who reaches this server can register, deregister and mark instances");
        }
        let writer = Writer::spawn(backend.clone(), store, storage.clone());
        Ok(Arc::new(Registry {
            backend,
            writer,
            storage,
            config,
            epoch,
            closing: tokio::sync::watch::Sender::new(false),
            reported: Default::default(),
            everything: Default::default(),
        }))
    }

    /// Ends open long polls and event streams, so a graceful shutdown need not wait for
    /// them; call it when shutdown starts.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A clean stop, once requests are done: merges the data file's write-ahead log, so
    /// the next start opens one file.
    pub async fn shutdown(&self) {
        self.close();
        let _ = self.writer.write(Op::Checkpoint).await;
    }

    /// Whether the data file's disk is full: writes are refused (507) until it has room.
    pub fn storage_full(&self) -> bool {
        self.storage.is_full()
    }

    /// The table.
    pub fn backend(&self) -> &InMemoryBackend {
        &self.backend
    }

    /// Probes the instances' health paths in the background, trusting `tls` for `https`
    /// instances ([`default_tls_config`](crate::default_tls_config) for the Mozilla roots).
    pub fn spawn_health_checks(
        self: &Arc<Self>,
        settings: HealthChecks,
        tls: rustls::ClientConfig,
    ) -> tokio::task::JoinHandle<()> {
        health::spawn(self.clone(), settings, tls)
    }

    /// Evicts expired instances every `interval`: each eviction is saved, then published.
    /// Once a second it also forgets services with no instance and no watcher.
    pub fn spawn_evictor(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut swept = tokio::time::Instant::now();
            loop {
                ticks.tick().await;
                // Services nobody registers in or watches (long polls of made-up names) go.
                if swept.elapsed() >= Duration::from_secs(1) {
                    registry.backend.forget_unused();
                    swept = tokio::time::Instant::now();
                }
                let expired = registry.backend.take_expired();
                if expired.is_empty() {
                    continue;
                }
                // Not saved: nothing changed, and the backend looks at them again in a second.
                if let Err(e) = registry.writer.write(Op::Evict(expired)).await {
                    tracing::warn!(error = %e, "evictions not saved; trying again in a second");
                }
            }
        })
    }

    /// A version's epoch part.
    fn epoch_of(version: u64) -> u64 {
        version >> EPOCH_SHIFT
    }
}

fn check(config: &ServerConfig) -> io::Result<()> {
    let invalid = |message: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    match &config.token {
        Some(token) if token.is_empty() => {
            return invalid("the token is empty: set a non-empty token, or none with open writes")
        }
        Some(token) if token.chars().any(char::is_control) => {
            return invalid("the token has control characters")
        }
        None if !config.open_writes => {
            return invalid(
                "no token: set --token (or SDK_REGISTRY_TOKEN), or pass --allow-open-writes to accept writes from anyone",
            )
        }
        _ => {}
    }
    if config.ttl.is_zero() || config.ttl > MAX_TTL {
        return invalid("the TTL must be between 1 s and 7 days");
    }
    Ok(())
}
