use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, RwLock},
    time::Duration,
};

use sdk_registry::{InMemoryBackend, RegistryBackend};

use tower::{Layer, Service, ServiceExt};

use super::{SdkInner, ServiceSdk};
use crate::{
    circuit_breaker::{FailureClassifier, ServerFailures},
    config::{ConfigError, SdkConfig, ServiceConfig},
    discovery::{Discovery, Instance, RegistryDiscovery, StaticDiscovery},
    error::{BoxError, ErrorContext, ServiceError},
    health::{HealthChange, HealthHook, HealthHooks},
    hooks::Hooks,
    middleware::{from_fn, HttpStack, LayerFn, MiddlewareError, Next, Stack},
    outcome::Classify,
    transport::{
        Body, HttpRequest, HttpResponse, HyperTransport, StreamRequest, StreamResponse,
        TransportConfig,
    },
};

/// Builds a [`ServiceSdk`]. Every setter's default is stated on it; nothing is checked
/// until [`build`](Self::build), which validates the whole configuration.
#[must_use]
pub struct ServiceSdkBuilder {
    config: SdkConfig,
    layers: Vec<LayerFn>,
    hooks: Hooks,
    discovery: Option<Arc<dyn Discovery>>,
    registry: Option<Arc<dyn RegistryBackend>>,
    heartbeat_interval: Duration,
    health_hooks: Vec<HealthHook>,
    classifier: Arc<dyn FailureClassifier>,
    classify: Option<Arc<dyn Classify>>,
    tls: Option<rustls::ClientConfig>,
    custom_transport: Option<tower::util::BoxCloneSyncService<HttpRequest, HttpResponse, BoxError>>,
    #[cfg(feature = "reqwest")]
    reqwest: Option<reqwest::Client>,
    // Read only with the feature; set either way, so callers need not know it.
    #[cfg_attr(not(feature = "compression"), allow(dead_code))]
    decompression: bool,
}

impl std::fmt::Debug for ServiceSdkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSdkBuilder")
            .field("config", &self.config)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl ServiceSdkBuilder {
    pub(super) fn new() -> Self {
        ServiceSdkBuilder {
            config: SdkConfig::new(),
            layers: Vec::new(),
            hooks: Hooks::default(),
            discovery: None,
            registry: None,
            heartbeat_interval: Duration::from_secs(30),
            health_hooks: Vec::new(),
            classifier: Arc::new(ServerFailures),
            classify: None,
            tls: None,
            custom_transport: None,
            #[cfg(feature = "reqwest")]
            reqwest: None,
            decompression: true,
        }
    }

    /// Asks for compressed answers (`Accept-Encoding: gzip, deflate`) and decodes them
    /// (feature `compression`; default on when the feature is). The size limit applies to
    /// the decoded body.
    /// Without the feature there is nothing to turn off, and this does nothing.
    pub fn decompression(mut self, enabled: bool) -> Self {
        self.decompression = enabled;
        self
    }

    /// Sends every attempt through `transport` instead of the network (default: hyper-util's
    /// pooled client): a [`ScriptedTransport`](crate::testing::ScriptedTransport) in tests,
    /// or a client of your own. It answers with whole bodies; middleware, the body limit
    /// (`max_response_bytes`, applied where every body is read) and everything above still
    /// apply.
    pub fn transport<S>(mut self, transport: S) -> Self
    where
        S: Service<HttpRequest, Response = HttpResponse, Error = BoxError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.custom_transport = Some(tower::util::BoxCloneSyncService::new(transport));
        self
    }

    /// The layers around the transport, innermost last: the user's, then the SDK's own.
    fn all_layers(&self) -> Vec<LayerFn> {
        #[allow(unused_mut)]
        let mut layers = self.layers.clone();
        #[cfg(feature = "compression")]
        if self.decompression {
            let stream: fn(http::Response<_>) -> StreamResponse = |r| r.map(Body::new);
            layers.push(Arc::new(move |inner: Stack| {
                let limit = inner.limit();
                let service = tower_http::decompression::DecompressionLayer::new()
                    .layer(inner)
                    .map_response(stream);
                Stack::new(service, limit)
            }));
        }
        layers
    }

    /// Replaces the whole configuration (default: [`SdkConfig::new`]).
    pub fn config(mut self, config: SdkConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the settings every unconfigured service uses (default: [`ServiceConfig::new`]).
    pub fn defaults(mut self, defaults: ServiceConfig) -> Self {
        self.config.defaults = defaults;
        self
    }

    /// Configures one service (default: the defaults, no instances).
    pub fn service(mut self, name: impl Into<String>, config: ServiceConfig) -> Self {
        self.config.services.insert(name.into(), config);
        self
    }

    /// Sets the transport settings (default: [`TransportConfig::default`]).
    pub fn transport_config(mut self, transport: TransportConfig) -> Self {
        self.config.transport = transport;
        self
    }

    /// Uses this rustls configuration for HTTPS, to services and to a configured registry
    /// server or etcd (default: Mozilla's roots, no client certificate).
    pub fn tls_config(mut self, tls: rustls::ClientConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sends through a user-supplied `reqwest::Client` instead of the built-in hyper
    /// transport (default: hyper-util). Feature `reqwest`.
    #[cfg(feature = "reqwest")]
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// Discovers through `registry` (default: an embedded in-memory registry with a 90 s
    /// heartbeat TTL).
    pub fn registry(mut self, registry: impl RegistryBackend) -> Self {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// How often `register_current_service` heartbeats (default 30 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Uses a custom discovery for services that have no configured instances (default:
    /// discovery through the registry).
    pub fn discovery(mut self, discovery: impl Discovery) -> Self {
        self.discovery = Some(Arc::new(discovery));
        self
    }

    /// Classifies every service's answers with `classify` instead of
    /// [`StatusClass::of`](crate::outcome::StatusClass::of): the one classification every
    /// layer reads (see [`Classify`]).
    pub fn classify(mut self, classify: impl Classify) -> Self {
        self.classify = Some(Arc::new(classify));
        self
    }

    /// Decides what counts as a failure for the circuit breakers (default: [`ServerFailures`],
    /// which reads the answer's class).
    pub fn failure_classifier(mut self, classifier: impl FailureClassifier) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// Adds a tower layer around each attempt's HTTP request (default: none). The first
    /// layer added is the outermost.
    ///
    /// Any `Clone` layer over `http::Request<Bytes>` → `http::Response<impl http_body::Body>`
    /// fits, tower-http's among them (`TraceLayer`, `DecompressionLayer`,
    /// `SetRequestIdLayer`, `TimeoutLayer`...); wrap one that is not `Clone` (tower's
    /// `RateLimitLayer`) in `BufferLayer`. See [`middleware`](crate::middleware).
    pub fn layer<L, B>(mut self, layer: L) -> Self
    where
        L: Layer<Stack> + Send + Sync + 'static,
        L::Service:
            Service<StreamRequest, Response = http::Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<StreamRequest>>::Error: Into<BoxError>,
        <L::Service as Service<StreamRequest>>::Future: Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: bytes::Buf + Send,
        B::Error: Into<BoxError>,
    {
        // The middleware's own errors are marked as such, so no layer above takes them for
        // the service's failures.
        let mark =
            |e: <L::Service as Service<StreamRequest>>::Error| MiddlewareError::wrap(e.into());
        let stream: fn(http::Response<B>) -> StreamResponse = |r| r.map(Body::new);
        self.layers.push(Arc::new(move |inner: Stack| {
            let limit = inner.limit();
            let service = layer.layer(inner).map_response(stream).map_err(mark);
            Stack::new(service, limit)
        }));
        self
    }

    /// Never prints the values of header `name` (in `Debug` output, errors, traces), beyond
    /// the built-in secret headers (default: none added), e.g. `x-session`.
    pub fn sensitive_header(mut self, name: http::HeaderName) -> Self {
        self.config.sensitive_headers.push(name);
        self
    }

    /// Adds middleware from an async closure (default: none), e.g. to add an auth header:
    ///
    /// ```
    /// # use sdk::prelude::*;
    /// let sdk = ServiceSdk::builder()
    ///     .middleware(|mut request, next| async move {
    ///         request.headers_mut().insert("authorization", http::HeaderValue::from_static("Bearer t"));
    ///         next.run(request).await
    ///     })
    ///     .build();
    /// # assert!(sdk.is_ok());
    /// ```
    pub fn middleware<F, Fut>(self, f: F) -> Self
    where
        F: Fn(HttpRequest, Next) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, BoxError>> + Send + 'static,
    {
        self.layer(from_fn(f))
    }

    /// Calls `hook` whenever a health check takes an instance out of rotation or brings it
    /// back (default: none).
    pub fn on_service_health_change<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HealthChange) + Send + Sync + 'static,
    {
        self.health_hooks.push(Arc::new(hook));
        self
    }

    /// Calls `hook` with every finished call: its outcome, attempts, latency and what the
    /// cache did (default: none). Runs on the caller's task: keep it quick.
    pub fn on_call<F>(mut self, hook: F) -> Self
    where
        F: Fn(&crate::telemetry::CallInfo<'_>) + Send + Sync + 'static,
    {
        self.hooks.on_call.push(Arc::new(hook));
        self
    }

    /// Calls `hook` with every error a call returns, and where it happened (default: none).
    pub fn on_error<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ServiceError, &ErrorContext) + Send + Sync + 'static,
    {
        self.hooks.on_error.push(Arc::new(hook));
        self
    }

    fn base_transport(&self) -> Result<HttpStack, ConfigError> {
        // The limit is read here, at build, so a later `transport_config` still counts.
        let limit = self.config.transport.max_response_bytes;
        if let Some(custom) = &self.custom_transport {
            return Ok(HttpStack::Whole(custom.clone(), limit));
        }
        #[cfg(feature = "reqwest")]
        if let Some(client) = &self.reqwest {
            let reqwest = crate::transport::ReqwestTransport::new(client.clone(), limit);
            return Ok(HttpStack::Whole(
                tower::util::BoxCloneSyncService::new(reqwest),
                limit,
            ));
        }
        let transport = match &self.tls {
            Some(tls) => HyperTransport::with_tls(&self.config.transport, tls.clone()),
            None => HyperTransport::new(&self.config.transport)?,
        };
        Ok(HttpStack::Hyper(transport))
    }

    /// The transport, wrapped in the layers when there are any. Without layers the
    /// transport is called directly, its body read in its own future; with them, they wrap
    /// it with bodies still streaming.
    fn http_stack(&self, http: HttpStack) -> HttpStack {
        let layers = self.all_layers();
        if layers.is_empty() {
            return http;
        }
        let mut stack = http.into_stack();
        for layer in layers.iter().rev() {
            stack = layer(stack);
        }
        HttpStack::Layered(stack)
    }

    /// The instances the configuration lists, by service.
    fn static_discovery(&self) -> Result<Arc<StaticDiscovery>, ConfigError> {
        let discovery = Arc::new(StaticDiscovery::new());
        for (name, service) in &self.config.services {
            let instances = service
                .instances
                .iter()
                .map(|url| Instance::parse(url))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ConfigError::invalid(format!("services.{name}.instances"), e.to_string())
                })?;
            if !instances.is_empty() {
                discovery.register(name, instances);
            }
        }
        Ok(discovery)
    }

    /// The registry the configuration names (`registry_url` or `etcd_endpoints`, reached
    /// with the same TLS settings as the services), if any.
    fn configured_registry(&self) -> Result<Option<Arc<dyn RegistryBackend>>, ConfigError> {
        match (&self.config.registry_url, &self.config.etcd) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "sdk.etcd_endpoints",
                "set either registry_url or etcd_endpoints, not both",
            )),
            (Some(url), None) => {
                let token = self.config.registry_token.clone();
                let backend = match &self.tls {
                    Some(tls) => sdk_registry::HttpBackend::with_tls(url, token, tls.clone()),
                    None => sdk_registry::HttpBackend::new(url, token),
                };
                let backend =
                    backend.map_err(|e| ConfigError::invalid("sdk.registry_url", e.to_string()))?;
                Ok(Some(Arc::new(backend)))
            }
            (None, Some(etcd)) => etcd.registry(self.tls.clone()).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Validates the configuration and builds the SDK.
    pub fn build(self) -> Result<ServiceSdk, ConfigError> {
        self.config.validate()?;
        if self.heartbeat_interval < crate::settings::MIN_INTERVAL {
            return Err(ConfigError::invalid(
                "heartbeat_interval",
                format!(
                    "must be at least {:?} (a shorter one is a busy loop)",
                    crate::settings::MIN_INTERVAL
                ),
            ));
        }
        let base = self.base_transport()?;
        // Only hyper-util's HTTP/1.1 client needs the SDK's `Host` (made once per instance;
        // it would format one per request): reqwest writes its own, a custom transport (a
        // broker) has no use for one, and HTTP/2 carries the host as `:authority`.
        let host_header =
            matches!(base, HttpStack::Hyper(_)) && !self.config.transport.http2_prior_knowledge;
        let http = self.http_stack(base);
        let static_discovery = self.static_discovery()?;
        let mut background = Vec::new();
        // Checked even when a registry is given in code: a configuration naming two is wrong.
        let configured = self.configured_registry()?;
        let registry: Arc<dyn RegistryBackend> = match self.registry.clone().or(configured) {
            Some(registry) => registry,
            None => {
                let embedded = InMemoryBackend::new();
                // Expiries reach watchers only through the evictor; it needs a runtime.
                if tokio::runtime::Handle::try_current().is_ok() {
                    background.push(embedded.spawn_evictor(Duration::from_secs(5)));
                }
                Arc::new(embedded)
            }
        };
        let health_hooks = HealthHooks::new(self.health_hooks);
        let registry_discovery =
            RegistryDiscovery::new(registry.clone()).with_health_hooks(health_hooks.clone());
        Ok(ServiceSdk {
            inner: Arc::new(SdkInner {
                config: self.config,
                static_discovery,
                custom_discovery: self.discovery,
                registry_discovery,
                registry,
                heartbeat_interval: self.heartbeat_interval,
                background,
                health_hooks,
                http,
                host_header,
                hooks: Arc::new(self.hooks),
                classifier: self.classifier,
                classify: self.classify,
                clients: RwLock::new(HashMap::new()),
            }),
        })
    }
}
