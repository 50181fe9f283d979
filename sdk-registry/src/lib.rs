//! The service registry: the data model ([`ServiceInstance`], [`InstanceRecord`],
//! [`HealthStatus`]), the [`RegistryBackend`] trait, and the embedded [`InMemoryBackend`].
//!
//! The SDK discovers instances through a backend: in memory by default, the registry server
//! ([`HttpBackend`]) or etcd ([`EtcdBackend`]).

mod backend;
mod error;
mod model;
#[cfg(feature = "server")]
pub mod server;

pub use sdk_base::{backoff, LATENCY_BUCKETS};

/// The TLS library of [`HttpBackend::with_tls`] and [`EtcdBackend::with_tls`].
pub use rustls;

pub use sdk_base::{causes, describe, health::HealthStreak, redact_url};

pub use self::{
    backend::{
        default_tls_config, https_connector, tls_config_trusting, AddressPolicy, AddressRefused,
        BoxFuture, ConnectSettings, Connector, EtcdBackend, HttpBackend, InMemoryBackend,
        RegistryBackend, Snapshot,
    },
    error::RegistryError,
    model::{validate_name, Address, HealthStatus, InstanceRecord, Scheme, ServiceInstance},
};
