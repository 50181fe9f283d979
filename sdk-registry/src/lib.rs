//! The service registry.
//!
//! This crate is part of the workspace layout; the registry's data model, backends
//! (in-memory, HTTP client, etcd) and server are not part of this release yet. Instances are
//! given to the SDK statically (configuration or `ServiceSdk::register_external_service`),
//! through the `sdk::discovery::Discovery` seam the registry will plug into.
