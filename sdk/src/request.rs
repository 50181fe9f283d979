//! [`ServiceRequest`]: what flows through the pipeline above the load balancer.
//!
//! The request is built once and shared: its parts sit behind an `Arc`, so the retry layer's
//! per-attempt copy is a reference-count increment, and the body is a `Bytes` serialized once,
//! so every retry resends exactly the same bytes (a request body can never be "not cloneable").

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::time::Instant;

use crate::{
    error::{Endpoint, EndpointSource},
    redact::RedactedHeaders,
    settings::{BreakerConfig, FallbackOn, HedgeConfig, Policy, RetryOverride},
    version::VersionSelector,
};

/// How the cache layer treats one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Use the service's cache settings.
    #[default]
    Default,
    /// Neither read nor write the cache.
    Bypass,
    /// Skip the lookup, call the service, and store the fresh answer (`force_refresh`).
    Refresh,
}

/// Per-call options that override the service's configuration for one request.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Overall deadline for this call, across retries (default: the service's `timeout`).
    pub timeout: Option<Duration>,
    /// Cache behaviour for this call.
    pub cache_mode: CacheMode,
    /// Cache this GET for this long even if the service's cache is off.
    pub cache_ttl: Option<Duration>,
    /// Declare the request idempotent (`Some(true)`) so non-idempotent methods may be retried,
    /// or forbid retries (`Some(false)`). `None` follows the method and configuration.
    pub idempotent: Option<bool>,
    /// Retry attempts and backoff for this call instead of the service's (the service's
    /// budget still applies). Generated clients set it from `#[retry]`.
    pub retry: Option<Policy<RetryOverride>>,
    /// Breaker settings for this call's endpoint instead of the service's, taken when the
    /// endpoint's breaker is created. Generated clients set it from `#[circuit_breaker]`.
    pub circuit_breaker: Option<Policy<BreakerConfig>>,
    /// Request headers that are part of this call's cache key, besides the service's
    /// `vary_headers`. Generated clients set it from `#[cached(vary_on = [...])]`.
    pub vary_on: VaryOn,
    /// The instance versions this call may go to, instead of the service's `version`.
    /// Generated clients set it from `#[service_interface(version = "...")]`.
    pub versions: Option<Policy<VersionSelector>>,
    /// The cache key of this GET instead of its path and query (vary headers are still
    /// added). Generated clients set it from `#[cached(key = function)]`.
    pub cache_key: Option<Box<str>>,
    /// How long an error answer (a status in the service's `error_statuses`: 404 and 410 by
    /// default) is cached, when it is. Generated clients set it from
    /// `#[cached(cache_on_error = "30s")]`.
    pub cache_on_error: Option<Duration>,
    /// The failures a fallback will take over (set by `fallback`): such a failure is
    /// reported with the outcome `fallback`.
    pub fallback: Option<FallbackOn>,
    /// Hedge this call (when idempotent) instead of following the service's `hedge`
    /// setting. Generated clients set it from `#[hedge(...)]`.
    pub hedge: Option<Policy<HedgeConfig>>,
    /// Keep this call's deadline from the next hop: no `x-request-deadline` header. For a
    /// message its receiver handles whenever it gets to it (an event), not while this
    /// caller waits; the call itself still ends at its deadline.
    pub hide_deadline: bool,
}

/// Request header names that are part of one call's cache key: a static list (what
/// generated clients pass, without allocating) or an owned one.
///
/// ```
/// use sdk::VaryOn;
///
/// let fixed: VaryOn = ["accept-language"].into();
/// let chosen: VaryOn = vec![String::from("x-tenant")].into();
/// assert_eq!(chosen.iter().collect::<Vec<_>>(), ["x-tenant"]);
/// # let _ = fixed;
/// ```
#[derive(Clone, Debug)]
pub struct VaryOn(VaryNames);

#[derive(Clone, Debug)]
enum VaryNames {
    Static(&'static [&'static str]),
    Owned(std::sync::Arc<[String]>),
}

impl Default for VaryOn {
    fn default() -> Self {
        VaryOn(VaryNames::Static(&[]))
    }
}

impl VaryOn {
    /// The header names.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (fixed, owned): (&[&str], &[String]) = match &self.0 {
            VaryNames::Static(names) => (names, &[]),
            VaryNames::Owned(names) => (&[], names),
        };
        fixed
            .iter()
            .copied()
            .chain(owned.iter().map(String::as_str))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            VaryNames::Static(names) => names.is_empty(),
            VaryNames::Owned(names) => names.is_empty(),
        }
    }
}

impl From<&'static [&'static str]> for VaryOn {
    fn from(names: &'static [&'static str]) -> Self {
        VaryOn(VaryNames::Static(names))
    }
}

impl<const N: usize> From<[&'static str; N]> for VaryOn {
    fn from(names: [&'static str; N]) -> Self {
        VaryOn(VaryNames::Owned(
            names.iter().map(|n| (*n).to_owned()).collect(),
        ))
    }
}

impl From<Vec<String>> for VaryOn {
    fn from(names: Vec<String>) -> Self {
        VaryOn(VaryNames::Owned(names.into()))
    }
}

impl From<Vec<&str>> for VaryOn {
    fn from(names: Vec<&str>) -> Self {
        VaryOn(VaryNames::Owned(
            names.into_iter().map(str::to_owned).collect(),
        ))
    }
}

/// The request as the pipeline sees it: method, relative path and query, headers and body,
/// plus which attempt this is and when the call must be done.
#[derive(Clone)]
pub struct ServiceRequest {
    parts: Arc<RequestParts>,
    attempt: u32,
    deadline: Option<(Instant, Duration)>,
    avoid: Option<Arc<str>>,
    /// The instances this pass's attempts went to, when it is hedged: a hedge goes to none
    /// of them.
    trail: Option<Arc<Trail>>,
}

/// The instances the attempts of one hedged pass went to (a few at most).
#[derive(Debug, Default)]
pub(crate) struct Trail(std::sync::Mutex<Vec<Arc<str>>>);

impl Trail {
    pub(crate) fn tried(&self) -> Vec<Arc<str>> {
        use sdk_base::sync::Unpoisoned as _;
        self.0.locked().clone()
    }

    pub(crate) fn push(&self, instance: Arc<str>) {
        use sdk_base::sync::Unpoisoned as _;
        self.0.locked().push(instance);
    }
}

struct RequestParts {
    method: Method,
    // A `String` as built (a generated client reserves room for its parameters): shrinking
    // it into a `Box<str>` would reallocate it on every call.
    path_and_query: String,
    // Where the path ends in `path_and_query` (at its `?`, or its length): found once, as
    // the path is read several times per call (endpoint keys, spans, metrics).
    path_end: usize,
    endpoint: Option<Cow<'static, str>>,
    headers: HeaderMap,
    body: Bytes,
    options: CallOptions,
    trace_id: u128,
    /// The bodies of a streamed call, carried to the transport.
    exchange: Option<Arc<crate::transport::Exchange>>,
}

impl RequestParts {
    fn path(&self) -> &str {
        self.path_and_query
            .get(..self.path_end)
            .unwrap_or(&self.path_and_query)
    }

    fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or_else(|| self.path())
    }
}

impl EndpointSource for RequestParts {
    fn method(&self) -> &Method {
        &self.method
    }

    fn name(&self) -> &str {
        self.endpoint()
    }
}

impl Endpoint {
    /// A request's endpoint, sharing its parts (no allocation).
    pub(crate) fn of(request: &ServiceRequest) -> Self {
        Endpoint::shared(request.parts.clone())
    }
}

impl ServiceRequest {
    /// Builds a request. `path_and_query` is relative to the instance's base URL and is
    /// checked with [`check_path`](crate::path::check_path): a path that names a host, climbs
    /// with `..` or holds characters a URI cannot carry is refused. `endpoint` names the
    /// operation for breakers, logs and errors (a path template such as `/users/{id}`; `None`
    /// uses the literal path).
    ///
    /// ```
    /// use sdk::{CallOptions, ServiceRequest};
    ///
    /// let ok = ServiceRequest::try_new(
    ///     http::Method::GET,
    ///     "/users/1",
    ///     Some("/users/{id}".into()),
    ///     http::HeaderMap::new(),
    ///     bytes::Bytes::new(),
    ///     CallOptions::default(),
    /// );
    /// assert_eq!(ok.expect("valid").endpoint(), "/users/{id}");
    /// ```
    pub fn try_new(
        method: Method,
        path_and_query: &str,
        endpoint: Option<Cow<'static, str>>,
        headers: HeaderMap,
        body: Bytes,
        options: CallOptions,
    ) -> Result<Self, crate::path::PathError> {
        crate::path::check_path(path_and_query)?;
        Ok(Self::new_checked(
            method,
            path_and_query.into(),
            endpoint,
            headers,
            body,
            options,
        ))
    }

    /// Builds a request whose path has already passed `check_path`.
    pub(crate) fn new_checked(
        method: Method,
        path_and_query: String,
        endpoint: Option<Cow<'static, str>>,
        headers: HeaderMap,
        body: Bytes,
        options: CallOptions,
    ) -> Self {
        ServiceRequest {
            parts: Arc::new(RequestParts {
                method,
                // A byte scan: `str::find(char)` cost ~190 instructions on a short path.
                path_end: path_and_query
                    .bytes()
                    .position(|b| b == b'?')
                    .unwrap_or(path_and_query.len()),
                path_and_query,
                endpoint,
                headers,
                body,
                options,
                trace_id: fastrand::u128(..).max(1),
                exchange: None,
            }),
            attempt: 1,
            deadline: None,
            avoid: None,
            trail: None,
        }
    }

    /// The HTTP request of one attempt at `instance`: the URI joined from the instance's
    /// pre-parsed base, the headers with this attempt's `traceparent`, and the instance's
    /// `Host` (made once per instance) when `host_header` and the call set none.
    pub(crate) fn to_http(
        &self,
        instance: &crate::instances::Instance,
        host_header: bool,
    ) -> Result<crate::transport::HttpRequest, crate::BoxError> {
        let mut http_request = http::Request::new(self.body().clone());
        *http_request.method_mut() = self.method().clone();
        *http_request.uri_mut() = instance.uri(self.path_and_query())?;
        let mut headers = self.headers().clone();
        // First, while the map may still be empty (no lookup for a caller's own).
        crate::trace::propagate(&mut headers, self.trace_id());
        if let Some(host) = instance.host_header().filter(|_| host_header) {
            headers
                .entry(http::header::HOST)
                .or_insert_with(|| host.clone());
        }
        *http_request.headers_mut() = headers;
        if let Some(exchange) = &self.parts.exchange {
            http_request.extensions_mut().insert(exchange.clone());
        }
        Ok(http_request)
    }

    /// Makes this a streamed call sending and receiving through `exchange` (a request just
    /// built, not yet shared).
    pub(crate) fn stream_through(&mut self, exchange: Arc<crate::transport::Exchange>) {
        if let Some(parts) = Arc::get_mut(&mut self.parts) {
            parts.exchange = Some(exchange);
        }
    }

    /// The bodies of a streamed call, if this is one.
    pub(crate) fn exchange(&self) -> Option<Arc<crate::transport::Exchange>> {
        self.parts.exchange.clone()
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// The path and query, relative to the instance's base URL. It is parsed into a URI only
    /// when an attempt is sent, so cache hits and refused calls never pay for parsing.
    pub fn path_and_query(&self) -> &str {
        &self.parts.path_and_query
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.parts.path()
    }

    /// The endpoint name (path template or literal path, without the query).
    pub fn endpoint(&self) -> &str {
        self.parts.endpoint()
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The body, serialized once.
    pub fn body(&self) -> &Bytes {
        &self.parts.body
    }

    /// The per-call options.
    pub fn options(&self) -> &CallOptions {
        &self.parts.options
    }

    /// The W3C trace id every attempt of this call carries (unless the caller set a
    /// `traceparent` of their own). Drawn when the request is built: two draws of a fast
    /// generator, where drawing it lazily (a `OnceLock`) cost three times as much.
    pub fn trace_id(&self) -> u128 {
        self.parts.trace_id
    }

    /// Which attempt this is, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the whole call must be finished, once the deadline layer has set it.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    /// The deadline and the timeout it was computed from.
    pub(crate) fn deadline_and_limit(&self) -> Option<(Instant, Duration)> {
        self.deadline
    }

    /// The instance the previous attempt failed on, which this attempt should avoid.
    pub fn avoid(&self) -> Option<&str> {
        self.avoid.as_deref()
    }

    pub(crate) fn set_avoid(&mut self, instance: Option<Arc<str>>) {
        self.avoid = instance;
    }

    /// The instances tried by this hedged pass, if it is one.
    pub(crate) fn trail(&self) -> Option<&Arc<Trail>> {
        self.trail.as_ref()
    }

    /// Starts a hedged pass: its attempts record where they went.
    pub(crate) fn start_trail(&mut self) {
        self.trail = Some(Arc::default());
    }

    /// Whether the call streams its bodies (those cannot be sent twice at once).
    pub(crate) fn is_streamed(&self) -> bool {
        self.parts.exchange.is_some()
    }

    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }

    pub(crate) fn set_deadline(&mut self, deadline: Instant, limit: Duration) {
        self.deadline = Some((deadline, limit));
    }

    /// Whether the method is idempotent by RFC 9110 (GET, HEAD, PUT, DELETE, OPTIONS, TRACE),
    /// or the request declares itself so: `CallOptions::idempotent` or an `Idempotency-Key`
    /// header (the same key on every attempt lets the server deduplicate).
    pub fn is_idempotent(&self) -> bool {
        if let Some(explicit) = self.parts.options.idempotent {
            return explicit;
        }
        matches!(
            self.parts.method,
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        ) || self.parts.headers.contains_key("idempotency-key")
    }
}

impl fmt::Debug for ServiceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceRequest")
            .field("method", &self.parts.method)
            .field("path_and_query", &self.parts.path_and_query)
            .field("endpoint", &self.endpoint())
            .field("headers", &RedactedHeaders(&self.parts.headers))
            .field("body_len", &self.parts.body.len())
            .field("options", &self.parts.options)
            .field("attempt", &self.attempt)
            .finish()
    }
}
