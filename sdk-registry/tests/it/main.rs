//! The registry's integration tests, in one test binary (one link, one process): each module is one former test file.

mod support;

mod dashboard;
mod durability;
#[cfg(feature = "etcd")]
mod etcd;
mod hostile;
mod registry_soak;
mod server;
mod tls;
mod versions;
