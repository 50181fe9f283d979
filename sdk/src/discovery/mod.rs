//! Where a service's instances come from.
//!
//! [`Discovery`] is the seam between the pipeline and whatever knows the instances: the
//! built-in [`StaticDiscovery`] (instances from configuration or
//! `ServiceSdk::register_external_service`), and [`RegistryDiscovery`] over any
//! `sdk_registry::RegistryBackend` (the embedded in-memory registry by default). A discovery hands
//! out a live [`InstanceSet`] per service and keeps it current; the load balancer reads the
//! set's latest snapshot on every attempt.

mod instance;
mod registry;

use sdk_registry::sync::Unpoisoned as _;
use sdk_registry::sync::UnpoisonedRw as _;
use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use arc_swap::ArcSwap;

use crate::balance::NoInstanceReason;
use tokio::sync::Notify;

pub use self::{
    instance::{Instance, InstanceParseError},
    registry::RegistryDiscovery,
};

/// A live, shared view of one service's instances.
///
/// Reads are lock-free and touch no shared counter (arc-swap): every attempt of every call
/// reads the set, on every core, while it changes only when discovery says so.
///
/// A set made with [`Default`] is *awaiting* its first [`replace`](Self::replace): a call
/// made before then (the first call to a service found through a registry, racing the first
/// lookup) waits for it, up to [`FIRST_FILL_WAIT`], instead of failing at once with no
/// instance. A set made with [`new`](Self::new) is filled from the start.
#[derive(Clone, Default)]
pub struct InstanceSet {
    current: Arc<ArcSwap<Vec<Instance>>>,
    first_fill: Arc<FirstFill>,
    /// Says why the set is empty; set by the discovery that fills it (read only when a call
    /// finds no instance, so a lock is fine).
    explain: Arc<std::sync::Mutex<Option<Explainer>>>,
}

/// Says why a set is empty.
pub(crate) type Explainer = Arc<dyn Fn() -> NoInstanceReason + Send + Sync>;

/// How long a call waits for a set's first fill (then it fails with no instance, and later
/// calls no longer wait).
pub const FIRST_FILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct FirstFill {
    filled: AtomicBool,
    notify: Notify,
}

impl InstanceSet {
    /// A set holding `instances`.
    pub fn new(instances: Vec<Instance>) -> Self {
        let set = InstanceSet::default();
        set.replace(instances);
        set
    }

    /// The instances right now (a snapshot).
    pub fn current(&self) -> Arc<Vec<Instance>> {
        self.current.load_full()
    }

    /// Reads the instances without taking a reference count (the per-attempt path).
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&[Instance]) -> R) -> R {
        f(&self.current.load())
    }

    /// Replaces the instances; every client of the service sees the change on its next call.
    pub fn replace(&self, instances: Vec<Instance>) {
        self.current.store(Arc::new(instances));
        if !self.first_fill.filled.swap(true, Ordering::AcqRel) {
            self.first_fill.notify.notify_waiters();
        }
    }

    /// Why the set is empty, as its discovery explains it (by default: nothing is
    /// registered).
    pub fn why_empty(&self) -> NoInstanceReason {
        let explain = self.explain.locked().clone();
        explain.map_or(NoInstanceReason::NothingRegistered, |explain| explain())
    }

    /// Lets `explain` say why the set is empty.
    pub(crate) fn explain_with(&self, explain: Explainer) {
        *self.explain.locked() = Some(explain);
    }

    /// Whether the set has been filled at least once.
    pub fn is_filled(&self) -> bool {
        self.first_fill.filled.load(Ordering::Acquire)
    }

    /// Waits until the set is first filled, at most `bound`; after a wait that ran out the set
    /// counts as filled, so only the first calls ever wait.
    pub async fn filled_within(&self, bound: Duration) {
        let notified = self.first_fill.notify.notified();
        tokio::pin!(notified);
        // Registered before the check, so a fill in between is not missed.
        notified.as_mut().enable();
        if self.is_filled() {
            return;
        }
        let _ = tokio::time::timeout(bound, notified).await;
        self.first_fill.filled.store(true, Ordering::Release);
    }
}

impl fmt::Debug for InstanceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.current().iter().map(Instance::url))
            .finish()
    }
}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_calls_wait_for_the_first_fill_and_no_longer() {
        let set = InstanceSet::default();
        assert!(!set.is_filled());
        let filler = set.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let instance = Instance::parse("http://127.0.0.1:1").expect("valid");
            filler.replace(vec![instance]);
        });
        let start = Instant::now();
        set.filled_within(FIRST_FILL_WAIT).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(set.current().len(), 1);

        let never = InstanceSet::default();
        let start = Instant::now();
        never.filled_within(FIRST_FILL_WAIT).await;
        assert_eq!(start.elapsed(), FIRST_FILL_WAIT, "bounded");
        assert!(never.is_filled(), "later calls do not wait again");
        assert!(InstanceSet::new(Vec::new()).is_filled());
    }
}
