use std::{borrow::Cow, fmt, time::Duration};

use bytes::Bytes;
use futures_util::future::Either;
use http::{header::CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, Method};
use serde::{de::DeserializeOwned, Serialize};

use super::ServiceClient;
use crate::{
    circuit_breaker::BreakerConfig,
    error::{ServiceError, ServiceResult},
    path::check_path,
    redact::{mark_sensitive, RedactedHeaders},
    request::{CacheMode, CallOptions, ServiceRequest},
    response::ServiceResponse,
    retry::RetryOverride,
};

/// A request being built; send it with [`send`](Self::send) (JSON decode, error on non-2xx)
/// or [`response`](Self::response) (any status, raw bytes).
///
/// Mistakes (a path that names another host, a bad header, a body that will not serialize)
/// are kept and returned by `send` as [`ServiceError::InvalidRequest`]; nothing is sent.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: ServiceClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Option<Cow<'static, str>>,
    options: CallOptions,
    error: Option<String>,
}

impl RequestBuilder {
    /// A builder taking ownership of an already built path (generated clients: no copy).
    pub(crate) fn with_path(client: ServiceClient, method: Method, path: String) -> Self {
        let error = check_path(&path).err().map(|e| e.to_string());
        let defaults = &client.inner().default_headers;
        let headers = if defaults.is_empty() {
            HeaderMap::new()
        } else {
            defaults.clone()
        };
        RequestBuilder {
            client,
            method,
            path,
            headers,
            body: Bytes::new(),
            endpoint: None,
            options: CallOptions::default(),
            error,
        }
    }

    /// The call's options, changed in place (generated code's steps, through `__private`:
    /// a by-value builder method moves the ~400-byte builder in and out).
    pub(crate) fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }

    /// The headers, changed in place (see [`options_mut`](Self::options_mut)).
    pub(crate) fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    pub(crate) fn fail(&mut self, reason: String) {
        if self.error.is_none() {
            self.error = Some(reason);
        }
    }

    /// Appends query parameters, serialized with `serde_urlencoded` (a struct, a map, or a
    /// slice of pairs; `None` fields are left out).
    ///
    /// ```no_run
    /// # async fn run(client: sdk::ServiceClient) -> sdk::ServiceResult<()> {
    /// let page: serde_json::Value = client
    ///     .get("/users")
    ///     .query(&[("limit", "10"), ("active", "true")])
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn query<T: Serialize + ?Sized>(mut self, query: &T) -> Self {
        if let Err(e) = crate::path::append_query(&mut self.path, query) {
            self.fail(format!("query parameters could not be encoded: {e}"));
        }
        self
    }

    /// Sets a header (replacing the service's default of the same name).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => self.fail("invalid header name or value".to_owned()),
        }
        self
    }

    /// Serializes `body` as JSON, once; every retry resends the same bytes.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Bytes::from(bytes);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => self.fail(format!("body could not be serialized as JSON: {e}")),
        }
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The deadline of this call across retries (default: the service's `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Hedges this call (when it is idempotent) as `hedge` says, whatever the service's
    /// setting; see [`hedge`](mod@crate::hedge).
    pub fn hedge(
        mut self,
        hedge: impl Into<crate::settings::Policy<crate::settings::HedgeConfig>>,
    ) -> Self {
        self.options.hedge = Some(hedge.into());
        self
    }

    /// Names the endpoint for breakers, logs and errors (default: the literal path). Use a
    /// template such as `/orders/{id}` so that calls for different ids share one breaker.
    pub fn endpoint(mut self, endpoint: impl Into<Cow<'static, str>>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Declares the request idempotent, so POST/PATCH may be retried (`true`), or forbids
    /// retrying it (`false`). Default: GET, HEAD, PUT, DELETE and requests with an
    /// `Idempotency-Key` header are idempotent.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.options.idempotent = Some(idempotent);
        self
    }

    /// Keeps this call's deadline from the service: no `x-request-deadline` header (see
    /// [`CallOptions::hide_deadline`](crate::CallOptions::hide_deadline)).
    pub fn hide_deadline(mut self) -> Self {
        self.options.hide_deadline = true;
        self
    }

    /// Skips the cache lookup, calls the service, and stores the fresh answer.
    pub fn force_refresh(mut self) -> Self {
        self.options.cache_mode = CacheMode::Refresh;
        self
    }

    /// Neither reads nor writes the cache for this call.
    pub fn no_cache(mut self) -> Self {
        self.options.cache_mode = CacheMode::Bypass;
        self
    }

    /// Caches this GET's answer for `ttl`, even if the service's cache is off.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.options.cache_ttl = Some(ttl);
        self
    }

    /// Uses these retry settings for this call instead of the service's (the service's retry
    /// budget still applies).
    pub fn retry_policy(
        mut self,
        retry: impl Into<crate::settings::Policy<RetryOverride>>,
    ) -> Self {
        self.options.retry = Some(retry.into());
        self
    }

    /// Gives this call's endpoint these breaker settings instead of the service's (taken when
    /// the endpoint's breaker is first created). Pair it with [`endpoint`](Self::endpoint).
    pub fn circuit_breaker(
        mut self,
        breaker: impl Into<crate::settings::Policy<BreakerConfig>>,
    ) -> Self {
        self.options.circuit_breaker = Some(breaker.into());
        self
    }

    /// Makes these request headers part of this call's cache key: a static list
    /// (`["accept-language"]`, `&["x-tenant"]`) or an owned one (`Vec<String>`).
    pub fn vary_on(mut self, headers: impl Into<crate::request::VaryOn>) -> Self {
        self.options.vary_on = headers.into();
        self
    }

    /// Caches this GET under `key` instead of its path and query (the service's vary headers
    /// are still added), so [`ServiceClient::clear_cache_key`] can drop it by that key: the
    /// reference SDK's `key_func`.
    ///
    /// ```no_run
    /// # async fn run(products: sdk::ServiceClient) -> sdk::ServiceResult<()> {
    /// let product: serde_json::Value = products
    ///     .get("/products/123?fields=all")
    ///     .cache_ttl(std::time::Duration::from_secs(300))
    ///     .cache_key("product:123")
    ///     .send()
    ///     .await?;
    /// products.clear_cache_key("product:123");
    /// # Ok(()) }
    /// ```
    pub fn cache_key(mut self, key: impl Into<String>) -> Self {
        self.options.cache_key = Some(key.into().into_boxed_str());
        self
    }

    /// Caches this GET's error answers too, for `ttl` (a status in the service's
    /// `cache.error_statuses`: 404 and 410 unless configured), so a missing resource does not
    /// cost an upstream call every time. Only when the answer is cached at all (the service's
    /// cache is on, or [`cache_ttl`](Self::cache_ttl) is set).
    pub fn cache_on_error(mut self, ttl: Duration) -> Self {
        self.options.cache_on_error = Some(ttl);
        self
    }

    /// Sends this call only to instances whose version matches `requirement` (`"^2"`,
    /// `"~1.4"`, `">=1.2, <2"`), instead of the service's `version`. A requirement that does
    /// not parse makes the call an [`ServiceError::InvalidRequest`]; when no instance
    /// matches, the call fails with [`ServiceError::NoHealthyInstance`] naming the
    /// requirement. See [`version`](crate::version).
    pub fn version(self, requirement: &str) -> Self {
        match crate::version::VersionSelector::require(requirement) {
            Ok(selector) => self.version_selector(selector),
            Err(e) => {
                let mut this = self;
                this.fail(e.to_string());
                this
            }
        }
    }

    /// Sends this call to the instances `selector` allows (a requirement or a weighted
    /// split), instead of the service's `version`.
    pub fn version_selector(
        mut self,
        selector: impl Into<crate::settings::Policy<crate::version::VersionSelector>>,
    ) -> Self {
        self.options.versions = Some(selector.into());
        self
    }

    /// Marks the call as having a fallback for `on`, so such a failure is reported with the
    /// outcome `fallback` (the caller then runs the fallback).
    pub(crate) fn fallback_on(mut self, on: crate::settings::FallbackOn) -> Self {
        self.options.fallback = Some(on);
        self
    }

    /// Sets the cache mode (default: [`CacheMode::Default`]).
    pub fn cache_mode(mut self, mode: CacheMode) -> Self {
        self.options.cache_mode = mode;
        self
    }

    /// Adds every header of `headers` (repeated names kept); with no header set before (no
    /// service defaults), the map is taken as it is, nothing copied.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        if self.headers.is_empty() {
            self.headers = headers;
            return self;
        }
        let mut last = None;
        for (name, value) in headers {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                self.headers.append(name.clone(), value);
            }
        }
        self
    }

    /// Sends the request with `body` streamed (never held whole) and answers as soon as the
    /// head arrives, the body still streaming: what a proxy needs for bodies of any size.
    ///
    /// The call goes through the same pipeline (deadline up to the head, breaker, balancer,
    /// attempt timeout, metrics); the cache is bypassed. A call with a non-empty body is sent
    /// once (its body cannot be sent again); one with an empty body keeps its retries.
    /// Middleware that reads whole bodies (`from_fn`) sees empty ones; a whole-body transport
    /// refuses a non-empty streamed body. A `101 Switching Protocols` answer (a WebSocket
    /// handshake sent with `Connection: upgrade`) comes with the switched connection in
    /// [`Streamed::upgrade`](crate::Streamed::upgrade).
    ///
    /// ```no_run
    /// # async fn run(sdk: sdk::ServiceSdk) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use http_body_util::BodyExt;
    /// let upload = sdk::transport::Body::full("a large body, read as it goes");
    /// let answer = sdk.get_client("files").put("/blobs/1").streamed(upload).await?;
    /// assert!(answer.head.status().is_success());
    /// let mut body = answer.body;
    /// while let Some(frame) = body.frame().await {
    ///     let _chunk = frame?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn streamed(
        mut self,
        body: crate::transport::Body,
    ) -> ServiceResult<crate::response::Streamed> {
        /// One attempt: a body can be sent once.
        static ONCE: RetryOverride = RetryOverride::new(1, Duration::ZERO, 1.0);
        let exchange = crate::transport::Exchange::new(body);
        self.options.cache_mode = CacheMode::Bypass;
        if !exchange.is_empty() {
            self.options.retry = Some((&ONCE).into());
        }
        let (client, mut request) = self.build()?;
        request.stream_through(exchange.clone());
        let head = client.call(request).await?;
        let body = exchange
            .take_response()
            .unwrap_or_else(|| crate::transport::Body::full(head.bytes().clone()));
        let upgrade = exchange.take_upgrade();
        Ok(crate::response::Streamed {
            head,
            body,
            upgrade,
        })
    }

    /// The request as the pipeline will see it, or why it is invalid.
    pub fn build(self) -> Result<(ServiceClient, ServiceRequest), ServiceError> {
        let RequestBuilder {
            client,
            method,
            path,
            mut headers,
            body,
            endpoint,
            options,
            error,
        } = self;
        if let Some(reason) = error {
            let err = ServiceError::invalid(&client.inner().name, reason);
            client.report(&err);
            return Err(err);
        }
        if options.timeout.is_some_and(|t| t.is_zero()) {
            let err =
                ServiceError::invalid(&client.inner().name, "timeout must be greater than zero");
            client.report(&err);
            return Err(err);
        }
        mark_sensitive(&mut headers, &client.inner().sensitive_headers);
        let request = ServiceRequest::new_checked(method, path, endpoint, headers, body, options);
        Ok((client, request))
    }

    /// Sends the request; any status the service answered is returned as a response.
    pub fn response(
        self,
    ) -> impl std::future::Future<Output = ServiceResult<ServiceResponse>> + Send + 'static {
        // See `send`: the future holds what the call needs, not the builder.
        let (client, request) = match self.build() {
            Ok(built) => built,
            Err(e) => return Either::Left(async move { Err(e) }),
        };
        Either::Right(async move { client.call(request).await })
    }

    /// Sends the request and decodes a 2xx JSON answer into `T` (an empty body decodes into
    /// `()`); a non-2xx answer is [`ServiceError::Status`] with its code and body.
    pub fn send<T: DeserializeOwned>(
        self,
    ) -> impl std::future::Future<Output = ServiceResult<T>> + Send + 'static {
        // Built before the future, which then holds the client and request alone: an
        // `async fn` kept the whole builder (392 bytes) beside the call's future, copied
        // with it at every move (issue 33).
        let (client, request) = match self.build() {
            Ok(built) => built,
            Err(e) => return Either::Left(async move { Err(e) }),
        };
        Either::Right(async move {
            let response = client.call_ref(&request, true).await?;
            let bytes = response.bytes();
            let decoded = if bytes.is_empty() {
                serde_json::from_slice(b"null")
            } else {
                serde_json::from_slice(bytes)
            };
            decoded.map_err(|source| {
                let mut context = client.context(&request);
                context.instance = response.instance.clone();
                context.attempts = response.attempts;
                let err = ServiceError::Decode {
                    context: Box::new(context),
                    source,
                };
                client.report(&err);
                err
            })
        })
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("service", &self.client.name())
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("body_len", &self.body.len())
            .field("options", &self.options)
            .finish()
    }
}
