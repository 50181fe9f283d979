//! The instances of a service as data: an [`Instance`] (its base URL, version and
//! metadata), its [`InstanceVersion`], and the live [`InstanceSet`] discovery fills and the
//! balancer, the health checker and version selection read. Below all three: nothing here
//! finds, probes or picks an instance.

mod instance;
mod version;

use sdk_base::sync::Unpoisoned as _;
use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

pub use self::{
    instance::{Instance, InstanceParseError},
    version::InstanceVersion,
};
use crate::error::NoInstanceReason;

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
