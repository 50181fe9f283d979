//! Picking an instance for each attempt, and turning the pipeline's [`ServiceRequest`] into
//! an HTTP request for it.
//!
//! Instances come from a live [`InstanceSet`]. With more than one, each attempt goes to:
//!
//! - **power of two choices over peak-EWMA** (the default): two random instances are
//!   compared on latency estimate × (requests in flight + 1), and the cheaper one wins. The
//!   estimate takes a slow answer at once and forgets it slowly (`decay`), so a slow instance
//!   is avoided quickly and tried again later. A 5xx or 429 answer is charged
//!   `failure_penalty`, however fast it was, or a failing instance would look fast and
//!   attract traffic. A new instance starts at the best known instance's estimate (at
//!   `default_rtt` when none is known, never above it), so it is tried at once: a tie
//!   with the best instance is won half the time.
//! - or **round robin**.
//!
//! An instance that fails `ejection_failures` times in a row is ejected for
//! `ejection_duration`, then readmitted. A retry avoids the instance its previous attempt
//! failed on. When every instance is ejected the balancer fails open and keeps choosing
//! among them (refusing every call would turn a partial outage into a total one).
//!
//! With a single instance none of this runs: the attempt goes straight to it.
//!
//! A call with a version requirement or split ([`version`](crate::version)) chooses only
//! among the instances it allows, by the same rules: a split first draws the call's group,
//! then the balancer picks within it.
//!
//! Why not tower's `balance::p2c::Balance` with `load::PeakEwma`: tower's balancer owns a
//! `Discover` stream of services and picks in `poll_ready`, with no notion of avoiding the
//! instance a retry just failed on, ejecting an instance after a failure streak, health
//! checks, or failing open when everything is ejected. The estimate here follows tower's
//! `PeakEwma` (peak on a slower answer, exponential decay, decay while idle).
//!
//! Each attempt has one timer, at the earlier of the attempt timeout and the call's deadline
//! (see [`timeout`](mod@crate::timeout)).
//!
//! Each attempt runs in a `tracing` span (`service`, `method`, `endpoint`, `instance`,
//! `attempt`, `status`), and an error is tagged with the instance it came from.

mod future;
mod stats;

use sdk_base::sync::Unpoisoned as _;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tower::{Layer, Service};

pub use self::future::ResponseFuture;
use self::stats::InstanceStats;
use crate::{
    box_error::BoxError,
    discovery::{Instance, InstanceSet},
    health::HealthState,
    outcome::{Classify, ErrorClass, StatusClass},
    request::ServiceRequest,
    response::ServiceResponse,
    timeout,
    transport::{HttpRequest, HttpResponse},
    version::VersionSelector,
};
pub use crate::{
    error::{AttemptError, NoInstanceReason, NoInstances},
    settings::{LoadBalancerConfig, Strategy},
};

/// Applies [`Balance`] over an instance set.
#[derive(Clone, Debug)]
pub struct BalanceLayer {
    service: Arc<str>,
    instances: InstanceSet,
    attempt_timeout: Option<Duration>,
    config: LoadBalancerConfig,
    health: Option<Arc<HealthState>>,
    versions: Option<VersionSelector>,
    classify: Option<Arc<dyn Classify>>,
    host_header: bool,
}

impl BalanceLayer {
    /// Balances calls to `service` over `instances`; each attempt is bounded by
    /// `attempt_timeout` (if any) and the call's deadline.
    pub fn new(
        service: Arc<str>,
        instances: InstanceSet,
        attempt_timeout: Option<Duration>,
        config: LoadBalancerConfig,
    ) -> Self {
        BalanceLayer {
            service,
            instances,
            attempt_timeout,
            config,
            health: None,
            versions: None,
            classify: None,
            host_header: true,
        }
    }

    /// Whether each attempt to a plain `http://` instance carries its `Host` header, made
    /// once per instance (on by default). HTTP/1.1 needs one, and the transport would
    /// otherwise format it per request; turn it off when plain HTTP goes out as HTTP/2
    /// (prior knowledge), whose `:authority` carries the host instead. A `ServiceSdk` turns
    /// it off too for a transport answering with whole bodies (reqwest sets its own; a
    /// custom transport, such as a broker, has no use for one).
    #[must_use]
    pub fn with_host_header(mut self, on: bool) -> Self {
        self.host_header = on;
        self
    }

    /// Classifies each attempt's answer with `classify` instead of [`StatusClass::of`](crate::outcome::StatusClass::of)
    /// (see [`Classify`]).
    #[must_use]
    pub fn with_classify(mut self, classify: Option<Arc<dyn Classify>>) -> Self {
        self.classify = classify;
        self
    }

    /// Sends calls only to instances of these versions (a call's own selector wins); see
    /// [`version`](crate::version).
    #[must_use]
    pub fn with_versions(mut self, versions: Option<VersionSelector>) -> Self {
        self.versions = versions;
        self
    }

    /// Leaves instances its health checks mark unhealthy out of rotation.
    #[must_use]
    pub fn with_health(mut self, health: Arc<HealthState>) -> Self {
        self.health = Some(health);
        self
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;

    fn layer(&self, inner: S) -> Balance<S> {
        Balance {
            inner,
            shared: Arc::new(Shared {
                service: self.service.clone(),
                instances: self.instances.clone(),
                attempt_timeout: self.attempt_timeout,
                next: AtomicUsize::new(fastrand::usize(..1024)),
                config: self.config,
                health: self.health.clone(),
                versions: self.versions.clone(),
                classify: self.classify.clone(),
                host_header: self.host_header,
                stats: ArcSwap::default(),
                insert: Mutex::new(()),
                epoch: Instant::now(),
            }),
        }
    }
}

/// Sends each attempt to one instance of the service.
#[derive(Clone, Debug)]
pub struct Balance<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Balance<S> {
    /// A handle that picks instances the way this balancer does, sharing its latency
    /// estimates, ejections and health view.
    pub fn picker(&self) -> InstancePicker {
        InstancePicker {
            shared: self.shared.clone(),
        }
    }
}

/// Picks one instance of a service as the balancer would for a call: for callers that talk
/// to the instance themselves (a WebSocket, a protocol the SDK does not carry).
///
/// A pick is a lookup: nothing is counted in flight and no outcome is recorded.
#[derive(Clone, Debug)]
pub struct InstancePicker {
    shared: Arc<Shared>,
}

impl InstancePicker {
    /// An instance of the service (of the service's version, if it has a requirement), or
    /// `None` if it has none.
    pub fn pick(&self) -> Option<Instance> {
        let shared = &self.shared;
        let selector = shared.versions.as_ref();
        shared.instances.with_current(|instances| {
            let (index, _) = shared
                .pick(instances, selector, fastrand::u128(..), None)
                .ok()?;
            instances.get(index).cloned()
        })
    }
}

#[derive(Debug)]
struct Shared {
    service: Arc<str>,
    instances: InstanceSet,
    attempt_timeout: Option<Duration>,
    next: AtomicUsize,
    config: LoadBalancerConfig,
    health: Option<Arc<HealthState>>,
    versions: Option<VersionSelector>,
    classify: Option<Arc<dyn Classify>>,
    host_header: bool,
    stats: ArcSwap<StatsMap>,
    insert: Mutex<()>,
    epoch: Instant,
}

type StatsMap = HashMap<Arc<str>, Arc<InstanceStats>, foldhash::fast::RandomState>;

impl Shared {
    fn now_ns(&self) -> u64 {
        crate::clock::nanos_since(self.epoch)
    }

    fn stats_for(&self, instance: &Instance) -> Arc<InstanceStats> {
        if let Some(stats) = self.stats.load().get(instance.url()) {
            return stats.clone();
        }
        let _insert = self.insert.locked();
        if let Some(stats) = self.stats.load().get(instance.url()) {
            return stats.clone();
        }
        // A new instance starts no costlier than the best known one: at `default_rtt`
        // beside instances that answer in a millisecond it would lose every comparison
        // until its estimate decayed (seconds), so it is tried at once instead.
        let (now, decay) = (self.now_ns(), crate::clock::nanos(self.config.decay));
        let best_known = (self.stats.load().values())
            .map(|known| known.estimate(now, decay) as u64)
            .min();
        let default_rtt = crate::clock::nanos(self.config.default_rtt);
        let start = best_known.map_or(default_rtt, |best| best.clamp(1, default_rtt));
        let stats = Arc::new(InstanceStats::new(start, now));
        // A new instance means the set changed: the copy keeps only the instances in it
        // now, so the map never outgrows the set (calls in flight hold their own `Arc`).
        let current = self.instances.current();
        let live: std::collections::HashSet<&str> = current.iter().map(Instance::url).collect();
        let mut next: StatsMap = self
            .stats
            .load()
            .iter()
            .filter(|(url, _)| live.contains(&***url))
            .map(|(url, stats)| (url.clone(), stats.clone()))
            .collect();
        next.insert(instance.url_arc().clone(), stats.clone());
        self.stats.store(Arc::new(next));
        stats
    }

    /// The instance one call uses, among those its version `selector` allows (drawn by
    /// `seed` for a split), and, with more than one to choose from, its statistics. `Err(None)`
    /// when the service has no instance, `Err(Some(why))` when none runs an allowed version.
    fn pick(
        &self,
        instances: &[Instance],
        selector: Option<&VersionSelector>,
        seed: u128,
        avoid: Option<&str>,
    ) -> Result<Picked, Option<NoInstanceReason>> {
        let Some(selector) = selector else {
            return self
                .select(instances, Pool::All(instances.len()), avoid)
                .ok_or(None);
        };
        if instances.is_empty() {
            return Err(None);
        }
        let pool = selector
            .candidates(instances, seed)
            .ok_or_else(|| Some(crate::version::no_match(selector, instances)))?;
        self.select(instances, Pool::Only(&pool), avoid).ok_or(None)
    }

    /// For an attempt of a hedged pass: an instance none of the pass's earlier attempts
    /// went to (recorded in `trail`), or `AllTried` when there is none.
    fn pick_untried(
        &self,
        instances: &[Instance],
        selector: Option<&VersionSelector>,
        seed: u128,
        trail: &crate::request::Trail,
    ) -> Result<Picked, Option<NoInstanceReason>> {
        let tried = trail.tried();
        if tried.is_empty() {
            let picked = self.pick(instances, selector, seed, None)?;
            trail.push(instances[picked.0].url_arc().clone());
            return Ok(picked);
        }
        let allowed: Vec<usize> = match selector {
            None => (0..instances.len()).collect(),
            Some(selector) => selector
                .candidates(instances, seed)
                .ok_or_else(|| Some(crate::version::no_match(selector, instances)))?,
        };
        let untried: Vec<usize> = allowed
            .into_iter()
            .filter(|&i| !tried.iter().any(|t| **t == *instances[i].url()))
            .collect();
        let picked = self
            .select(instances, Pool::Only(&untried), None)
            .ok_or(Some(NoInstanceReason::AllTried { tried: tried.len() }))?;
        trail.push(instances[picked.0].url_arc().clone());
        Ok(picked)
    }

    /// The instance to use among `pool` and, with more than one, its statistics; `None` when
    /// the pool is empty.
    fn select(
        &self,
        instances: &[Instance],
        pool: Pool<'_>,
        avoid: Option<&str>,
    ) -> Option<Picked> {
        match pool.len() {
            0 => None,
            // One instance: nothing to choose, no shared state to touch.
            1 => Some((pool.at(0), None)),
            _ => {
                let (index, stats) = self.choose(instances, pool, avoid);
                Some((index, Some(stats)))
            }
        }
    }

    /// Picks an instance among two or more of `pool`; see the module docs.
    fn choose(
        &self,
        instances: &[Instance],
        pool: Pool<'_>,
        avoid: Option<&str>,
    ) -> (usize, Arc<InstanceStats>) {
        let now = self.now_ns();
        let decay = crate::clock::nanos(self.config.decay);
        let n = pool.len();
        // `k` counts within the pool; `pool.at(k)` is the instance's index in the set.
        let instance = |k: usize| &instances[pool.at(k)];
        let stats = |k: usize| self.stats_for(instance(k));
        let usable = |k: usize, stats: &InstanceStats| {
            let url = instance(k).url();
            !stats.is_ejected(now)
                && avoid != Some(url)
                && !self.health.as_ref().is_some_and(|h| h.is_unhealthy(url))
        };
        let chosen = |(k, stats): (usize, Arc<InstanceStats>)| (pool.at(k), stats);
        match self.config.strategy {
            Strategy::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                for j in 0..n {
                    let k = (start + j) % n;
                    let s = stats(k);
                    if usable(k, &s) {
                        return chosen((k, s));
                    }
                }
            }
            Strategy::PowerOfTwoChoices => {
                let a = fastrand::usize(..n);
                let b = (a + 1 + fastrand::usize(..n - 1)) % n;
                let (sa, sb) = (stats(a), stats(b));
                match (usable(a, &sa), usable(b, &sb)) {
                    (true, true) => {
                        return if sa.cost(now, decay) <= sb.cost(now, decay) {
                            chosen((a, sa))
                        } else {
                            chosen((b, sb))
                        }
                    }
                    (true, false) => return chosen((a, sa)),
                    (false, true) => return chosen((b, sb)),
                    (false, false) => {
                        let best = (0..n)
                            .map(|k| (k, stats(k)))
                            .filter(|(k, s)| usable(*k, s))
                            .min_by(|x, y| x.1.cost(now, decay).total_cmp(&y.1.cost(now, decay)));
                        if let Some(best) = best {
                            return chosen(best);
                        }
                    }
                }
            }
        }
        // Every instance is ejected (or avoided): fail open, preferring one not just failed
        // and the one readmitted soonest.
        let fallback = (0..n)
            .map(|k| (k, stats(k)))
            .min_by_key(|(k, s)| (avoid == Some(instance(*k).url()), s.ejected_until()))
            .unwrap_or_else(|| (0, stats(0)));
        chosen(fallback)
    }
}

/// An instance's index in the set and, when there was a choice, its statistics.
type Picked = (usize, Option<Arc<InstanceStats>>);

/// The instances one call may choose from: all of the set, or the indices its version
/// selector allows.
#[derive(Clone, Copy)]
enum Pool<'a> {
    All(usize),
    Only(&'a [usize]),
}

impl Pool<'_> {
    fn len(self) -> usize {
        match self {
            Pool::All(n) => n,
            Pool::Only(indices) => indices.len(),
        }
    }

    /// The set index of the pool's `k`th instance.
    fn at(self, k: usize) -> usize {
        match self {
            Pool::All(_) => k,
            Pool::Only(indices) => indices[k],
        }
    }
}

/// One attempt's hold on its instance's statistics: keeps the in-flight count right even
/// if the attempt is dropped, and charges an attempt dropped unfinished (a hedge won, the
/// caller gave up) the time it had taken so far. Otherwise an instance whose slow answers
/// are always cancelled by a faster hedge would look fast to the balancer forever.
struct InFlight {
    stats: Arc<InstanceStats>,
    shared: Arc<Shared>,
    started: Instant,
    done: bool,
}

impl InFlight {
    /// Feeds the attempt's outcome to the instance's estimates.
    fn finish(mut self, url: &str, outcome: Result<StatusClass, ErrorClass>) {
        self.done = true;
        observe(
            &self.shared,
            &self.stats,
            url,
            outcome,
            self.started.elapsed(),
        );
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            // It took at least this long; nothing else is known (not a failure).
            let now = self.shared.now_ns();
            let decay = crate::clock::nanos(self.shared.config.decay);
            let elapsed = crate::clock::nanos(self.started.elapsed());
            self.stats.observe(elapsed, now, decay);
        }
        self.stats.finish();
    }
}

impl<S> Service<ServiceRequest> for Balance<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = BoxError> + Send,
    S::Future: Send + 'static,
{
    type Response = ServiceResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ServiceRequest) -> Self::Future {
        let shared = &self.shared;
        let selector = request.options().versions.as_deref();
        let selector = selector.or(shared.versions.as_ref());
        // A split draws by the call's trace id, so every attempt of a call stays in one group
        // (the id is drawn anyway, for the `traceparent`).
        let seed = if selector.is_some() {
            request.trace_id()
        } else {
            0
        };
        let chosen = shared.instances.with_current(|instances| {
            let (index, stats) = match request.trail() {
                Some(trail) => shared.pick_untried(instances, selector, seed, trail)?,
                None => shared.pick(instances, selector, seed, request.avoid())?,
            };
            let instance = &instances[index];
            Ok::<_, Option<NoInstanceReason>>((
                instance.url_arc().clone(),
                stats,
                request.to_http(instance, shared.host_header),
            ))
        });
        let (url, stats, http_request) = match chosen {
            Ok((url, stats, Ok(http_request))) => (url, stats, http_request),
            Ok((_, _, Err(e))) => return ResponseFuture::refused(e),
            Err(why) => {
                let why = NoInstances(why.unwrap_or_else(|| shared.instances.why_empty()));
                return ResponseFuture::refused(why.into());
            }
        };
        let span = match crate::trace::wanted(tracing::Level::DEBUG) {
            false => tracing::Span::none(),
            true => crate::trace::live(tracing::debug_span!(
                "attempt",
                service = %self.shared.service,
                method = %request.method(),
                endpoint = request.endpoint(),
                instance = %url,
                attempt = request.attempt(),
                status = tracing::field::Empty,
            )),
        };
        let now = Instant::now();
        let bound = timeout::attempt_bound(
            now,
            self.shared.attempt_timeout,
            request.deadline_and_limit(),
        );
        let mut http_request = http_request;
        if let Some((at, _)) = bound.filter(|_| !request.options().hide_deadline) {
            // The next hop learns how long this attempt will be waited for.
            crate::deadline::stamp_header(
                http_request.headers_mut(),
                at.saturating_duration_since(now),
            );
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(http_request)
        };
        let tracker = stats.map(|stats| {
            stats.start();
            InFlight {
                stats,
                shared: shared.clone(),
                started: now,
                done: false,
            }
        });
        let exchange = bound.and_then(|_| request.exchange());
        let classify = self.shared.classify.clone();
        ResponseFuture::started(future, bound, exchange, url, tracker, classify, span)
    }
}

/// Feeds one attempt's outcome to the instance's latency estimate and failure streak.
fn observe(
    shared: &Shared,
    stats: &InstanceStats,
    url: &str,
    outcome: Result<StatusClass, ErrorClass>,
    elapsed: Duration,
) {
    let config = &shared.config;
    let (failed, penalized) = match outcome {
        Ok(class) => (
            class.fault().counts_against_service(),
            class.failed_to_serve(),
        ),
        Err(class) => match class {
            // The caller's own side failed: nothing was learned of the instance.
            class if class.is_callers_own() => return,
            class => (class.is_service_failure(), class.is_service_failure()),
        },
    };
    let rtt = if penalized {
        elapsed.max(config.failure_penalty)
    } else {
        elapsed
    };
    let now = shared.now_ns();
    let decay = crate::clock::nanos(config.decay);
    stats.observe(crate::clock::nanos(rtt), now, decay);
    if stats.record(failed, now, config) {
        tracing::warn!(service = %shared.service, instance = url, for_ = ?config.ejection_duration, "instance ejected after repeated failures");
        crate::telemetry::ejection(&shared.service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picker with the default configuration over `set`.
    fn default_picker(set: &InstanceSet) -> InstancePicker {
        let layer = BalanceLayer::new(
            "svc".into(),
            set.clone(),
            None,
            LoadBalancerConfig::default(),
        );
        layer.layer(()).picker()
    }

    #[test]
    fn a_new_instance_is_tried_at_once_beside_fast_ones() {
        let set = InstanceSet::default();
        let picker = default_picker(&set);
        let shared = &picker.shared;
        let old = Instance::parse("http://10.0.0.1:80").expect("valid");
        let new = Instance::parse("http://10.0.0.2:80").expect("valid");
        set.replace(vec![old.clone()]);
        let decay = crate::clock::nanos(shared.config.decay);
        let known = shared.stats_for(&old);
        for _ in 0..20 {
            known.observe(1_000_000, shared.now_ns(), decay); // answers in 1 ms
        }
        set.replace(vec![old, new.clone()]);
        let picks = (0..40)
            .filter(|_| picker.pick().as_ref() == Some(&new))
            .count();
        assert!(
            picks >= 5,
            "the new instance got {picks} of 40 picks beside a 1 ms one"
        );
    }

    #[test]
    fn statistics_never_outgrow_the_instance_set() {
        let set = InstanceSet::default();
        let picker = default_picker(&set);
        // 10,000 distinct instances, two at a time, each picked from.
        for n in 0..5_000 {
            let pair = [2 * n, 2 * n + 1]
                .map(|i| Instance::parse(&format!("http://10.0.{}.{}:80", i / 250, i % 250)));
            set.replace(pair.into_iter().map(|i| i.expect("valid")).collect());
            for _ in 0..4 {
                assert!(picker.pick().is_some());
            }
        }
        let kept = picker.shared.stats.load().len();
        assert!(kept <= 2, "statistics of {kept} instances kept");
    }
}
