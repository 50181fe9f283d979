//! Where instances are registered. [`RegistryBackend`] is implemented by the in-memory
//! backend (the embedded default), by [`HttpBackend`], the registry server's client, and by
//! [`EtcdBackend`], for fleets that keep their registry in etcd.
//!
//! The trait is object-safe (boxed futures), so the SDK can hold whichever backend its
//! configuration names.

pub(crate) mod client;
#[cfg(feature = "etcd")]
mod etcd;
mod http;
mod memory;

use sdk_base::sync::Unpoisoned as _;
use std::{fmt, future::Future, pin::Pin, sync::Arc};

use tokio::sync::watch;

pub use sdk_base::https::{
    default_tls_config, https_connector, tls_config_trusting, AddressPolicy, AddressRefused,
    ConnectSettings, Connector,
};

#[cfg(feature = "etcd")]
pub use self::etcd::EtcdBackend;
pub use self::{http::HttpBackend, memory::InMemoryBackend};

/// Where an etcd backend keeps its keys unless told otherwise (`EtcdBackend::DEFAULT_PREFIX`,
/// with feature `etcd`).
pub const DEFAULT_ETCD_PREFIX: &str = "/sdk-registry/services/";
use crate::{validate_name, HealthStatus, InstanceRecord, RegistryError, ServiceInstance};

/// A boxed, `Send` future (the trait is used as `dyn RegistryBackend`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A service's instances at one moment. Records are shared between snapshots, so making
/// one costs a pointer per instance, not a copy of each.
pub type Snapshot = Arc<Vec<Arc<InstanceRecord>>>;

/// Registers, finds and watches service instances.
pub trait RegistryBackend: fmt::Debug + Send + Sync + 'static {
    /// Registers `instance` (or refreshes it, if its id is already registered).
    fn register(&self, instance: ServiceInstance) -> BoxFuture<'_, Result<(), RegistryError>>;

    /// Removes an instance.
    fn deregister<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Keeps an instance alive for another TTL.
    fn heartbeat<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Records the outcome of a health check.
    fn set_health<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
        health: HealthStatus,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// The instances of `service` (empty if none).
    fn instances<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceRecord>, RegistryError>>;

    /// The names of services with at least one instance.
    fn services(&self) -> BoxFuture<'_, Result<Vec<String>, RegistryError>>;

    /// A channel that always holds the latest instances of `service`.
    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Snapshot>, RegistryError>>;

    /// Why `service`'s watch is not current, while it is not: the registry unreachable,
    /// or the credentials refused (its channel then keeps the last set it had). `None`
    /// while the watch follows the registry, and for backends that cannot fall behind.
    fn watch_problem(&self, service: &str) -> Option<RegistryError> {
        let _ = service;
        None
    }
}

/// Each followed service's current watch failure, shared by a backend's clones and its
/// follow loops (the answer of [`RegistryBackend::watch_problem`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchProblems(
    Arc<std::sync::Mutex<std::collections::HashMap<String, RegistryError>>>,
);

impl WatchProblems {
    /// Records (or with `None`, clears) `service`'s failure.
    pub(crate) fn set(&self, service: &str, problem: Option<RegistryError>) {
        let mut problems = self.0.locked();
        match problem {
            Some(problem) => {
                problems.insert(service.to_owned(), problem);
            }
            None => {
                problems.remove(service);
            }
        }
    }

    /// `service`'s failure, if it has one.
    pub(crate) fn get(&self, service: &str) -> Option<RegistryError> {
        let problems = self.0.locked();
        problems.get(service).cloned()
    }
}

/// Now, as Unix milliseconds (for `last_heartbeat_ms`).
pub(crate) fn unix_ms() -> u64 {
    sdk_base::clock::now_unix_ms()
}

/// `value` if it is a valid service or instance name ([`validate_name`]), so it is safe as a
/// path segment or a key component.
pub(crate) fn name_segment(value: &str) -> Result<&str, RegistryError> {
    validate_name("name", value).map(|()| value)
}
