#![doc = include_str!("../README.md")]
//!
//! # The crate
//!
//! The service registry: the data model ([`ServiceInstance`], [`InstanceRecord`],
//! [`HealthStatus`]), the [`RegistryBackend`] trait, and the embedded [`InMemoryBackend`].
//!
//! The SDK discovers instances through a backend: in memory by default, the registry server
//! ([`HttpBackend`]) or etcd (`EtcdBackend`, feature `etcd`).

mod backend;
mod error;
mod model;
#[cfg(feature = "server")]
pub mod server;

pub use sdk_base::{backoff, LATENCY_BUCKETS};

/// The TLS library of [`HttpBackend::with_tls`] and `EtcdBackend::with_tls`.
pub use rustls;

pub use sdk_base::{causes, describe, health::HealthStreak, redact_url};

#[cfg(feature = "etcd")]
pub use self::backend::EtcdBackend;
pub use self::{
    backend::{
        default_tls_config, https_connector, tls_config_trusting, AddressPolicy, AddressRefused,
        BoxFuture, ConnectSettings, Connector, HttpBackend, InMemoryBackend, RegistryBackend,
        Snapshot, DEFAULT_ETCD_PREFIX,
    },
    error::RegistryError,
    model::{validate_name, Address, HealthStatus, InstanceRecord, Scheme, ServiceInstance},
};
