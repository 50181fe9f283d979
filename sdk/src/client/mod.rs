//! [`ServiceClient`]: calls to one service through the whole pipeline.
//!
//! ```no_run
//! # use sdk::prelude::*;
//! # #[derive(serde::Deserialize)] struct Order { id: u64 }
//! # async fn run(sdk: ServiceSdk) -> ServiceResult<()> {
//! let orders = sdk.get_client("order-service");
//! let order: Order = orders.get("/orders/123").send().await?;
//! let created: Order = orders
//!     .post("/orders")
//!     .json(&serde_json::json!({ "item": "book" }))
//!     .header("idempotency-key", "order-7f3a")
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```

mod map_error;
mod request_builder;

use std::{fmt, sync::Arc};

use http::{HeaderMap, Method};
use tracing::Instrument;

pub use self::request_builder::RequestBuilder;
use crate::{
    balance::Balance,
    balance::InstancePicker,
    cache::ResponseCache,
    circuit_breaker::{CircuitBreakerService, EndpointBreakers, EndpointCircuit},
    deadline::DeadlineLayer,
    discovery::{Instance, InstanceSet, FIRST_FILL_WAIT},
    error::{Endpoint, ErrorContext, ServiceError, ServiceResult},
    health::{HealthState, InstanceHealth},
    hooks::Hooks,
    middleware::HttpStack,
    request::ServiceRequest,
    response::ServiceResponse,
    retry::RetryPolicy,
};

/// The stages each attempt goes through, outermost first: hedging, the breaker, the
/// balancer and the transport.
pub(crate) type Attempts = crate::hedge::Hedge<CircuitBreakerService<Balance<HttpStack>>>;

/// The whole pipeline. Never part of the public API. Its outer steps (the deadline, the
/// cache, the retry loop) are steps of one future rather than tower layers (which the crate
/// still offers, for stacks of one's own): as layers each wrapped the future under it in its
/// own and cloned the stages under it on every call, which nothing here needs since nothing
/// composes them differently (issue 33: 246 instructions a call, measured with callgrind).
/// The decisions stay in one place each: [`DeadlineLayer::stamp`], [`ResponseCache::through`],
/// [`RetryPolicy`].
#[derive(Clone)]
pub(crate) struct Pipeline {
    pub(crate) deadline: DeadlineLayer,
    pub(crate) cache: ResponseCache,
    pub(crate) retry: RetryPolicy,
    pub(crate) attempts: Attempts,
}

impl Pipeline {
    /// The call's timeout: its own, or the service's.
    pub(crate) fn limit(&self, request: &ServiceRequest) -> std::time::Duration {
        self.deadline.limit(request)
    }

    /// Stamps `request` with its deadline, counted from `started`.
    pub(crate) fn stamp(&self, request: &mut ServiceRequest, started: tokio::time::Instant) {
        self.deadline.stamp(request, started);
    }

    /// Sends a stamped request, for a call that started at `started`: from the cache when
    /// it is cacheable, else (and to fill it) through the retry loop over the attempts'
    /// stages.
    pub(crate) fn call(
        &self,
        request: ServiceRequest,
        started: tokio::time::Instant,
    ) -> impl std::future::Future<Output = Result<ServiceResponse, crate::BoxError>> + Send + 'static
    {
        use futures_util::future::Either;
        let retry = self.retry.clone();
        if self.attempts.hedges(&request) {
            let attempts = self.attempts.clone();
            let fetch = move |request| crate::retry::retried(retry, attempts, request, started);
            return Either::Left(self.cache.through(request, fetch));
        }
        // Not hedged: straight to the breaker, no hedging stage to pass through.
        let attempts = self.attempts.inner().clone();
        let fetch = move |request| crate::retry::retried(retry, attempts, request, started);
        Either::Right(self.cache.through(request, fetch))
    }
}

/// A client for one service. Cheap to clone; all clones share breakers, cache and budget.
#[derive(Clone)]
pub struct ServiceClient {
    inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) name: Arc<str>,
    pub(crate) pipeline: Pipeline,
    pub(crate) breakers: Arc<EndpointBreakers>,
    pub(crate) cache: ResponseCache,
    pub(crate) default_headers: HeaderMap,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) metrics: Option<crate::telemetry::CallMetrics>,
    /// The service's deadline for a whole call (a request's `.timeout()` overrides it).
    pub(crate) error_body_limit: usize,
    /// Header names never printed beyond the built-in ones (`[sdk] sensitive_headers`).
    pub(crate) sensitive_headers: Arc<[http::HeaderName]>,
    pub(crate) health: Arc<HealthState>,
    pub(crate) health_task: Option<tokio::task::JoinHandle<()>>,
    pub(crate) instances: InstanceSet,
    pub(crate) picker: InstancePicker,
    pub(crate) http: HttpStack,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if let Some(task) = &self.health_task {
            task.abort();
        }
    }
}

impl ServiceClient {
    pub(crate) fn from_inner(inner: ClientInner) -> Self {
        ServiceClient {
            inner: Arc::new(inner),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A request with any method; `path` is relative to the instance (`/orders/1?x=y`). A
    /// `String` is taken as it is, without a copy.
    pub fn request(&self, method: Method, path: impl Into<String>) -> RequestBuilder {
        RequestBuilder::with_path(self.clone(), method, path.into())
    }

    /// A GET request.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST request (not retried unless marked idempotent).
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A PUT request.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    /// A PATCH request (not retried unless marked idempotent).
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    /// A DELETE request.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// A HEAD request.
    pub fn head(&self, path: &str) -> RequestBuilder {
        self.request(Method::HEAD, path)
    }

    /// Probes every instance's health path now (whether or not background checks are on),
    /// applies the thresholds, and reports each instance.
    pub async fn health_check(&self) -> Vec<InstanceHealth> {
        self.inner
            .health
            .check(&self.inner.http, &self.inner.instances)
            .await
    }

    /// One instance of the service, picked as the load balancer would pick it for a call
    /// (healthy, not ejected, cheapest of two by latency), or `None` if it has none. The first
    /// lookup of a service found through a registry is waited for, as for a call.
    pub async fn pick_instance(&self) -> Option<Instance> {
        self.inner.instances.filled_within(FIRST_FILL_WAIT).await;
        self.inner.picker.pick()
    }

    /// Every endpoint's circuit breaker: state and failure counts.
    pub fn circuit_state(&self) -> Vec<EndpointCircuit> {
        self.inner.breakers.snapshot()
    }

    /// Drops every cached response of this service.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Drops the cached responses under `key`, in all their header variants: a key a request
    /// named (`.cache_key("product:123")`, `#[cached(key = ...)]`), or a GET path with its
    /// query string (`"/products/123"`).
    pub fn clear_cache_key(&self, key: &str) {
        self.inner.cache.clear_key(key);
    }

    /// Sends a built request through the pipeline. Any status the service answered is `Ok`;
    /// transport failures, timeouts and an open breaker are `Err`.
    pub async fn call(&self, request: ServiceRequest) -> ServiceResult<ServiceResponse> {
        self.call_ref(&request, false).await
    }

    /// `call` for a caller that keeps the request (for its error context): one clone, here.
    /// With `success_only`, a non-2xx answer is turned into [`ServiceError::Status`] here,
    /// inside the call's span, as `send` wants it.
    pub(crate) async fn call_ref(
        &self,
        request: &ServiceRequest,
        success_only: bool,
    ) -> ServiceResult<ServiceResponse> {
        // A client span with OpenTelemetry's HTTP semantic-convention fields (the
        // `tracing-opentelemetry` layer turns `otel.*` into the span's name, kind and
        // status). No subscriber wanting INFO: no span is built at all.
        let span = match crate::trace::wanted(tracing::Level::INFO) {
            false => tracing::Span::none(),
            true => crate::trace::live(tracing::info_span!(
                "call",
                otel.name = %format_args!("{} {}", request.method(), request.endpoint()),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                service = %self.inner.name,
                http.request.method = %request.method(),
                server.address = %self.inner.name,
                url.template = request.endpoint(),
                http.response.status_code = tracing::field::Empty,
                http.request.resend_count = tracing::field::Empty,
                error.type = tracing::field::Empty,
                outcome = tracing::field::Empty,
            )),
        };
        // One clock read for the call's deadline, its deposit in the retry budget and its
        // latency.
        let started = tokio::time::Instant::now();
        let mut owned = request.clone();
        if request.deadline().is_none() {
            self.inner.pipeline.stamp(&mut owned, started);
        }
        if !self.inner.instances.is_filled() {
            // The first call to a discovered service: let the first lookup land, within the
            // call's own deadline (which counts from the start of the call).
            let limit = self.inner.pipeline.limit(request);
            self.inner
                .instances
                .filled_within(FIRST_FILL_WAIT.min(limit))
                .await;
        }
        // The first attempt starts on the future's first poll, inside the call's span (its
        // `traceparent` names that span as parent).
        let future = self.inner.pipeline.call(owned, started);
        let result = match span.is_none() {
            // No span to enter on each poll: the future alone.
            true => future.await,
            false => future.instrument(span.clone()).await,
        };
        let result = match result {
            Ok(response) if success_only && !response.status().is_success() => {
                Err(span.in_scope(|| self.status_error(response, request)))
            }
            Ok(response) => Ok(response),
            Err(err) => {
                let err = map_error::from_pipeline(err, self.context(request));
                // The `call failed` event belongs to the call's span.
                span.in_scope(|| self.report(&err));
                Err(err)
            }
        };
        self.finished(request, &result, started.elapsed(), &span);
        result
    }

    /// Records a finished call: metrics, and the `on_call` hooks.
    fn finished(
        &self,
        request: &ServiceRequest,
        result: &ServiceResult<ServiceResponse>,
        latency: std::time::Duration,
        span: &tracing::Span,
    ) {
        use crate::telemetry::{CallInfo, CallOutcome};
        // A failure the call's fallback takes over ends as `fallback`, with its cause.
        let fallback = match (result, request.options().fallback) {
            (Err(err), Some(on)) => on.taken(err),
            _ => None,
        };
        if let (Some(cause), Err(err)) = (fallback, result) {
            span.in_scope(|| {
                tracing::info!(service = %self.inner.name, endpoint = %request.endpoint(),
                    cause = cause.name(), error = %err, "falling back");
            });
        }
        let (outcome, status, attempts, cache, retry_stop) = match result {
            Ok(response) => (
                CallOutcome::of_class(response.class()),
                Some(response.status()),
                // A cache hit sent nothing (the stored answer keeps its own count).
                match response.cache_status() {
                    crate::CacheStatus::Hit => 0,
                    _ => response.attempts(),
                },
                response.cache_status(),
                None,
            ),
            Err(err) if fallback.is_some() => (
                CallOutcome::Fallback,
                err.status_code(),
                err.attempts(),
                crate::CacheStatus::Uncached,
                None,
            ),
            Err(err) => (
                CallOutcome::of_error(err),
                err.status_code(),
                err.attempts(),
                crate::CacheStatus::Uncached,
                match err {
                    ServiceError::RetriesExhausted { stop, .. }
                        if *stop != crate::RetryStop::AttemptsExhausted =>
                    {
                        Some(*stop)
                    }
                    _ => None,
                },
            ),
        };
        let info = CallInfo {
            service: &self.inner.name,
            method: request.method(),
            endpoint: request.endpoint(),
            outcome,
            status,
            attempts,
            latency,
            cache,
            retry_stop,
            fallback_cause: fallback,
        };
        if !span.is_disabled() {
            record_on_span(span, &info);
        }
        if let Some(metrics) = &self.inner.metrics {
            metrics.record(&info);
        }
        for hook in &self.inner.hooks.on_call {
            hook(&info);
        }
    }

    pub(crate) fn context(&self, request: &ServiceRequest) -> ErrorContext {
        ErrorContext {
            service: self.inner.name.clone(),
            endpoint: Endpoint::of(request),
            instance: None,
            attempts: 0,
            class: None,
        }
    }

    pub(crate) fn status_error(
        &self,
        response: ServiceResponse,
        request: &ServiceRequest,
    ) -> ServiceError {
        let err = map_error::from_status(
            response,
            self.context(request),
            self.inner.error_body_limit,
            &self.inner.sensitive_headers,
        );
        self.report(&err);
        err
    }

    pub(crate) fn report(&self, err: &ServiceError) {
        tracing::debug!(service = %self.inner.name, error = %err, "call failed");
        self.inner.hooks.on_error(err, &self.inner.name);
    }

    pub(crate) fn inner(&self) -> &ClientInner {
        &self.inner
    }
}

/// The call's outcome on its span, as OpenTelemetry's HTTP client conventions name it:
/// status, resends, the outcome, and for a failure `error.type` (the status code, or the
/// outcome) and an error status.
fn record_on_span(span: &tracing::Span, call: &crate::telemetry::CallInfo<'_>) {
    use crate::telemetry::CallOutcome;
    if let Some(status) = call.status {
        span.record("http.response.status_code", status.as_u16());
    }
    if call.attempts > 1 {
        span.record("http.request.resend_count", call.attempts - 1);
    }
    span.record("outcome", call.outcome.as_str());
    // A client span's 4xx is an error too (the HTTP semantic conventions).
    if call.outcome != CallOutcome::Success {
        match call.status {
            Some(status) => span.record("error.type", status.as_str()),
            None => span.record("error.type", call.outcome.as_str()),
        };
        span.record("otel.status_code", "ERROR");
    }
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}
