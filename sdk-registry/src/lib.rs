//! The service registry: the data model ([`ServiceInstance`], [`InstanceRecord`],
//! [`HealthStatus`]), the [`RegistryBackend`] trait, and the embedded [`InMemoryBackend`].
//!
//! The SDK discovers instances through a backend: in memory by default, later the registry
//! server or etcd.

mod backend;
mod error;
mod model;
#[cfg(feature = "server")]
pub mod server;

pub use self::{
    backend::{BoxFuture, HttpBackend, InMemoryBackend, RegistryBackend, Snapshot},
    error::RegistryError,
    model::{HealthStatus, InstanceRecord, Scheme, ServiceInstance},
};
