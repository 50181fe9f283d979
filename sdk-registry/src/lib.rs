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

/// Latency histogram buckets in seconds (1 ms to 30 s), for the SDK's and the registry
/// server's Prometheus exposition: explicit buckets, so histograms aggregate across
/// instances (summaries do not).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The TLS library of [`HttpBackend::with_tls`] and [`EtcdBackend::with_tls`].
pub use rustls;

pub use self::{
    backend::{
        default_tls_config, https_connector, tls_config_trusting, AddressPolicy, AddressRefused,
        BoxFuture, ConnectSettings, Connector, EtcdBackend, HttpBackend, InMemoryBackend,
        RegistryBackend, Snapshot,
    },
    causes::{causes, describe},
    error::RegistryError,
    model::{validate_name, Address, HealthStatus, InstanceRecord, Scheme, ServiceInstance},
    redact::redact_url,
    streak::HealthStreak,
};
