//! The service registry: the data model ([`ServiceInstance`], [`InstanceRecord`],
//! [`HealthStatus`]), the [`RegistryBackend`] trait, and the embedded [`InMemoryBackend`].
//!
//! The SDK discovers instances through a backend: in memory by default, the registry server
//! ([`HttpBackend`]) or etcd ([`EtcdBackend`]).

mod backend;
pub mod backoff;
mod causes;
mod error;
mod model;
mod redact;
#[cfg(feature = "server")]
pub mod server;
mod streak;
#[doc(hidden)]
pub mod sync;

/// The TLS library of [`HttpBackend::with_tls`] and [`EtcdBackend::with_tls`].
pub use rustls;

pub use self::{
    backend::{
        default_tls_config, https_connector, tls_config_trusting, BoxFuture, ConnectSettings,
        EtcdBackend, HttpBackend, InMemoryBackend, RegistryBackend, Snapshot,
    },
    causes::{causes, describe},
    error::RegistryError,
    model::{validate_name, Address, HealthStatus, InstanceRecord, Scheme, ServiceInstance},
    redact::redact_url,
    streak::HealthStreak,
};
