//! Where a service's instances come from.
//!
//! [`Discovery`] is the seam between the pipeline and whatever knows the instances: the
//! built-in [`StaticDiscovery`] (instances from configuration or
//! `ServiceSdk::register_external_service`), and [`RegistryDiscovery`] over any
//! `sdk_registry::RegistryBackend` (the embedded in-memory registry by default). A discovery hands
//! out a live [`InstanceSet`] per service and keeps it current; the load balancer reads the
//! set's latest snapshot on every attempt.

mod registry;

use sdk_base::sync::UnpoisonedRw as _;
use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
};

pub use self::registry::RegistryDiscovery;
pub use crate::instances::{Instance, InstanceParseError, InstanceSet, FIRST_FILL_WAIT};

/// Finds the instances of a service.
///
/// ```
/// use sdk::discovery::{Discovery, Instance, InstanceSet};
///
/// /// Every service lives on the same gateway.
/// #[derive(Debug)]
/// struct Gateway(InstanceSet);
///
/// impl Discovery for Gateway {
///     fn instances(&self, _service: &str) -> InstanceSet {
///         self.0.clone()
///     }
/// }
///
/// let gateway = Instance::parse("http://127.0.0.1:8080").expect("valid URL");
/// let discovery = Gateway(InstanceSet::new(vec![gateway]));
/// assert_eq!(discovery.instances("users").current().len(), 1);
/// ```
pub trait Discovery: fmt::Debug + Send + Sync + 'static {
    /// The live instance set of `service`; an unknown service gets an empty set that the
    /// discovery fills in if instances appear later.
    fn instances(&self, service: &str) -> InstanceSet;
}

/// Instances given up front (configuration, `register_external_service`).
#[derive(Debug, Default)]
pub struct StaticDiscovery {
    services: RwLock<HashMap<String, InstanceSet>>,
    pins: RwLock<HashMap<String, Arc<AtomicBool>>>,
}

impl StaticDiscovery {
    /// An empty discovery.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the instances of `service`, replacing any it had, and pins the service: from
    /// now on no other source (a registry follower) writes its set.
    pub fn register(&self, service: &str, instances: Vec<Instance>) {
        self.pin(service).store(true, Ordering::Release);
        self.instances(service).replace(instances);
    }

    /// Whether `service` was given instances here (even if since emptied).
    pub fn has(&self, service: &str) -> bool {
        self.pin(service).load(Ordering::Acquire)
    }

    /// The flag that says `service` is pinned to its registered instances.
    pub fn pin(&self, service: &str) -> Arc<AtomicBool> {
        if let Some(pin) = self.pins.read_locked().get(service) {
            return pin.clone();
        }
        self.pins
            .write_locked()
            .entry(service.to_owned())
            .or_default()
            .clone()
    }
}

impl Discovery for StaticDiscovery {
    fn instances(&self, service: &str) -> InstanceSet {
        if let Some(set) = self.services.read_locked().get(service) {
            return set.clone();
        }
        self.services
            .write_locked()
            .entry(service.to_owned())
            .or_default()
            .clone()
    }
}
