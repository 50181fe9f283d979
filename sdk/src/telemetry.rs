//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade: the SDK records, your
//! program picks the exporter (or none: then each recording is a check of an empty handle).
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `sdk_calls_total` | counter | `service`, `method`, `endpoint`, `outcome` |
//! | `sdk_call_duration_seconds` | histogram | `service`, `method`, `endpoint`, `outcome` |
//! | `sdk_attempts_total` | counter | `service`, `method`, `endpoint` |
//! | `sdk_retries_total` | counter | `service`, `method`, `endpoint` |
//! | `sdk_retries_refused_total` | counter | `service`, `reason` (`budget`, `retry_after`, `deadline`) |
//! | `sdk_fallbacks_total` | counter | `service`, `method`, `endpoint`, `cause` (`circuit_open`, `timeout`, `server_error`, `unavailable`) |
//! | `sdk_cache_requests_total` | counter | `service`, `result` (`hit`, `miss`, `stale`) |
//! | `sdk_circuit_state` | gauge (0 closed, 1 half-open, 2 open) | `service`, `method`, `endpoint` |
//! | `sdk_circuit_transitions_total` | counter | `service`, `method`, `endpoint`, `to` |
//! | `sdk_instance_ejections_total` | counter | `service` |
//! | `sdk_hedges_total` | counter | `service`, `result` (`sent`, `won`) |
//! | `sdk_registry_follow_errors_total` | counter | `service` |
//!
//! `endpoint` is the path template (`/users/{id}`) or the name given with
//! `RequestBuilder::endpoint`, never a literal path with ids in it, and the number of
//! endpoints per service is bounded (1,024), so series cannot grow without end.
//!
//! With the `prometheus` feature, `Prometheus` (in this module) installs a recorder with
//! explicit histogram buckets and renders the text exposition on a route you mount.

use std::{sync::OnceLock, time::Duration};

use http::{Method, StatusCode};
use metrics::{Counter, Histogram, Label};

pub use crate::outcome::CallOutcome;
use crate::{
    endpoint_map::EndpointMap, error::RetryStop, outcome::OUTCOMES, response::CacheStatus,
};

/// Metric names.
pub mod names {
    /// Calls by outcome.
    pub const CALLS: &str = "sdk_calls_total";
    /// Call latency, retries and backoff included, in seconds.
    pub const CALL_DURATION: &str = "sdk_call_duration_seconds";
    /// Attempts sent.
    pub const ATTEMPTS: &str = "sdk_attempts_total";
    /// Retries (attempts after the first).
    pub const RETRIES: &str = "sdk_retries_total";
    /// Calls that wanted a retry and were refused one.
    pub const RETRIES_REFUSED: &str = "sdk_retries_refused_total";
    /// Failed calls handed to their fallback, by cause.
    pub const FALLBACKS: &str = "sdk_fallbacks_total";
    /// Cache lookups by result.
    pub const CACHE: &str = "sdk_cache_requests_total";
    /// Circuit breaker state: 0 closed, 1 half-open, 2 open.
    pub const CIRCUIT_STATE: &str = "sdk_circuit_state";
    /// Circuit breaker transitions.
    pub const CIRCUIT_TRANSITIONS: &str = "sdk_circuit_transitions_total";
    /// Hedges sent, and hedges whose answer won (label `result`).
    pub const HEDGES: &str = "sdk_hedges_total";
    /// Instances ejected by the balancer.
    pub const EJECTIONS: &str = "sdk_instance_ejections_total";
    /// Failures to follow a service in the registry.
    pub const REGISTRY_FOLLOW_ERRORS: &str = "sdk_registry_follow_errors_total";
}

/// One finished call, as the `on_call` hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct CallInfo<'a> {
    /// The service.
    pub service: &'a str,
    /// The HTTP method.
    pub method: &'a Method,
    /// The endpoint (path template or given name).
    pub endpoint: &'a str,
    /// How it ended.
    pub outcome: CallOutcome,
    /// The answer's status, when there was one.
    pub status: Option<StatusCode>,
    /// Attempts sent (0 for a cache hit or a refused call).
    pub attempts: u32,
    /// From the start of the call to its end, retries and backoff included.
    pub latency: Duration,
    /// What the cache did.
    pub cache: CacheStatus,
    /// Why retrying stopped, when a retry was wanted and refused.
    pub retry_stop: Option<RetryStop>,
    /// What failed, when the outcome is [`CallOutcome::Fallback`]: one of the
    /// [`FallbackOn`](crate::fallback::FallbackOn) causes.
    pub fallback_cause: Option<crate::settings::FallbackOn>,
}

/// One endpoint's metric handles, each registered on its first use, so a program without a
/// recorder pays a check of an empty handle per recording, and labels are built once.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    labels: Vec<Label>,
    calls: [OnceLock<Counter>; OUTCOMES],
    latency: [OnceLock<Histogram>; OUTCOMES],
    attempts: OnceLock<Counter>,
    retries: OnceLock<Counter>,
    fallbacks: [OnceLock<Counter>; 4],
}

impl EndpointMetrics {
    fn new(service: &str, method: &Method, endpoint: &str) -> Self {
        EndpointMetrics {
            labels: vec![
                Label::new("service", service.to_owned()),
                Label::new("method", method.as_str().to_owned()),
                Label::new("endpoint", endpoint.to_owned()),
            ],
            calls: Default::default(),
            latency: Default::default(),
            attempts: OnceLock::new(),
            retries: OnceLock::new(),
            fallbacks: Default::default(),
        }
    }

    fn record(&self, call: &CallInfo<'_>) {
        let index = call.outcome.index();
        self.calls[index]
            .get_or_init(|| metrics::counter!(names::CALLS, self.with_outcome(call.outcome)))
            .increment(1);
        self.latency[index]
            .get_or_init(|| {
                metrics::histogram!(names::CALL_DURATION, self.with_outcome(call.outcome))
            })
            .record(call.latency.as_secs_f64());
        if call.attempts > 0 {
            self.attempts
                .get_or_init(|| metrics::counter!(names::ATTEMPTS, self.labels.clone()))
                .increment(u64::from(call.attempts));
        }
        if call.attempts > 1 {
            self.retries
                .get_or_init(|| metrics::counter!(names::RETRIES, self.labels.clone()))
                .increment(u64::from(call.attempts - 1));
        }
        if let Some(cause) = call.fallback_cause {
            self.fallbacks[cause.index()]
                .get_or_init(|| {
                    let mut labels = self.labels.clone();
                    labels.push(Label::new("cause", cause.name()));
                    metrics::counter!(names::FALLBACKS, labels)
                })
                .increment(1);
        }
    }

    fn with_outcome(&self, outcome: CallOutcome) -> Vec<Label> {
        let mut labels = self.labels.clone();
        labels.push(Label::new("outcome", outcome.as_str()));
        labels
    }
}

/// The call metrics of one service: a bounded map from endpoint to its handles.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    service: std::sync::Arc<str>,
    endpoints: EndpointMap<EndpointMetrics>,
    cache: [OnceLock<Counter>; 3],
    refused: [OnceLock<Counter>; 3],
}

impl CallMetrics {
    pub(crate) fn new(service: std::sync::Arc<str>) -> Self {
        let overflow = EndpointMetrics::new(&service, &Method::GET, "(overflow)");
        CallMetrics {
            endpoints: EndpointMap::new(1024, overflow),
            service,
            cache: Default::default(),
            refused: Default::default(),
        }
    }

    /// Records one finished call.
    pub(crate) fn record(&self, call: &CallInfo<'_>) {
        self.endpoints.with(
            call.method,
            call.endpoint,
            || EndpointMetrics::new(&self.service, call.method, call.endpoint),
            |endpoint| endpoint.record(call),
        );
        self.record_cache(call.cache);
        if let Some(stop) = call.retry_stop {
            self.record_refusal(stop);
        }
    }

    fn record_cache(&self, status: CacheStatus) {
        let (slot, result) = match status {
            CacheStatus::Hit => (0, "hit"),
            CacheStatus::Miss => (1, "miss"),
            CacheStatus::Stale => (2, "stale"),
            _ => return,
        };
        self.cache[slot]
            .get_or_init(|| {
                metrics::counter!(names::CACHE, "service" => self.service.to_string(), "result" => result)
            })
            .increment(1);
    }

    fn record_refusal(&self, stop: RetryStop) {
        let (slot, reason) = match stop {
            RetryStop::BudgetExhausted => (0, "budget"),
            RetryStop::RetryAfterTooLong => (1, "retry_after"),
            RetryStop::DeadlineReached => (2, "deadline"),
            _ => return,
        };
        self.refused[slot]
            .get_or_init(|| {
                metrics::counter!(names::RETRIES_REFUSED, "service" => self.service.to_string(), "reason" => reason)
            })
            .increment(1);
    }
}

/// Records a breaker's move to `to` (rare: labels are built here).
pub(crate) fn circuit_transition(
    service: &str,
    method: &Method,
    endpoint: &str,
    (value, name): (f64, &'static str),
) {
    let labels = vec![
        Label::new("service", service.to_owned()),
        Label::new("method", method.as_str().to_owned()),
        Label::new("endpoint", endpoint.to_owned()),
    ];
    metrics::gauge!(names::CIRCUIT_STATE, labels.clone()).set(value);
    let mut transition = labels;
    transition.push(Label::new("to", name));
    metrics::counter!(names::CIRCUIT_TRANSITIONS, transition).increment(1);
}

/// Records a hedge sent, or one that won (`result`: `sent`, `won`).
pub(crate) fn hedge(service: &str, result: &'static str) {
    metrics::counter!(names::HEDGES, "service" => service.to_owned(), "result" => result)
        .increment(1);
}

/// Records an instance ejection (rare).
pub(crate) fn ejection(service: &str) {
    metrics::counter!(names::EJECTIONS, "service" => service.to_owned()).increment(1);
}

/// Prometheus exposition (feature `prometheus`): a global recorder whose histograms are true
/// Prometheus histograms with explicit buckets (never summaries), rendered as text on a
/// route you mount. It runs no listener of its own.
///
/// ```no_run
/// # #[cfg(feature = "prometheus")]
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let prometheus = sdk::telemetry::Prometheus::install()?;
/// // In an axum app: .route("/metrics", get(move || async move { prometheus.render() }))
/// let text = prometheus.render();
/// # let _ = text; Ok(()) }
/// ```
#[cfg(feature = "prometheus")]
#[derive(Clone, Debug)]
pub struct Prometheus {
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

#[cfg(feature = "prometheus")]
impl Prometheus {
    /// Histogram buckets, in seconds: 1 ms to 30 s (the registry server uses the same).
    pub const BUCKETS: &'static [f64] = sdk_base::LATENCY_BUCKETS;

    /// Installs the recorder as the process's global one (once per process), and, inside a
    /// Tokio runtime, a task that drains histogram buffers every 5 s.
    pub fn install() -> Result<Self, metrics_exporter_prometheus::BuildError> {
        let handle = sdk_base::prometheus::install()?;
        Ok(Prometheus { handle })
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// The content type of [`render`](Self::render)'s text.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
}
