//! [`ServiceSdk`]: the entry point. It owns the configuration, the transport, discovery and
//! one [`ServiceClient`] per service.

mod builder;
mod registration;

use sdk_base::sync::UnpoisonedRw as _;
use std::{
    collections::HashMap,
    fmt,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use sdk_registry::{InstanceRecord, RegistryBackend, RegistryError, ServiceInstance};

use http::HeaderMap;
use tower::Layer;

pub use self::{builder::ServiceSdkBuilder, registration::Registration};
use crate::{
    balance::BalanceLayer,
    batch::Batch,
    cache::ResponseCache,
    circuit_breaker::{CircuitBreakerLayer, EndpointBreakers, FailureClassifier},
    client::{ClientInner, Pipeline, ServiceClient},
    config::{ConfigError, SdkConfig},
    deadline::DeadlineLayer,
    discovery::{
        Discovery, Instance, InstanceParseError, InstanceSet, RegistryDiscovery, StaticDiscovery,
    },
    health::{HealthChange, HealthHooks, HealthState, InstanceHealth},
    hooks::Hooks,
    middleware::HttpStack,
    outcome::Classify,
};

/// The SDK: build it once, share it (it is cheap to clone), and get clients from it.
///
/// ```
/// use sdk::prelude::*;
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sdk = ServiceSdk::builder()
///     .service("order-service", ServiceConfig::new().instance("http://127.0.0.1:8081"))
///     .build()?;
/// let orders = sdk.get_client("order-service");
/// assert_eq!(orders.name(), "order-service");
/// # Ok(()) }
/// # run().unwrap();
/// ```
#[derive(Clone)]
pub struct ServiceSdk {
    inner: Arc<SdkInner>,
}

struct SdkInner {
    config: SdkConfig,
    static_discovery: Arc<StaticDiscovery>,
    /// A user-supplied discovery, consulted for services without static instances.
    custom_discovery: Option<Arc<dyn Discovery>>,
    registry_discovery: RegistryDiscovery,
    registry: Arc<dyn RegistryBackend>,
    heartbeat_interval: Duration,
    background: Vec<tokio::task::JoinHandle<()>>,
    health_hooks: HealthHooks,
    http: HttpStack,
    /// Whether attempts carry the instance's `Host`, made once (see `BalanceLayer::with_host_header`).
    host_header: bool,
    hooks: Arc<Hooks>,
    classifier: Arc<dyn FailureClassifier>,
    classify: Option<Arc<dyn Classify>>,
    clients: RwLock<HashMap<String, ServiceClient>>,
}

impl ServiceSdk {
    /// A builder starting from the defaults.
    pub fn builder() -> ServiceSdkBuilder {
        ServiceSdkBuilder::new()
    }

    /// An SDK with the given configuration.
    pub fn from_config(config: SdkConfig) -> Result<Self, ConfigError> {
        Self::builder().config(config).build()
    }

    /// An SDK configured from a TOML file (see the README's configuration reference).
    /// Errors name the file, the key and what is wrong.
    pub fn from_config_file(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        Self::from_config(SdkConfig::from_file(path)?)
    }

    /// The configuration in force.
    pub fn config(&self) -> &SdkConfig {
        &self.inner.config
    }

    /// The client of `service`, created on first use and shared afterwards. A service with no
    /// configuration gets the defaults; one with no instances answers every call with
    /// `ServiceError::NoHealthyInstance` until instances are registered.
    pub fn get_client(&self, service: &str) -> ServiceClient {
        if let Some(client) = self.inner.clients.read_locked().get(service) {
            return client.clone();
        }
        let mut clients = self.inner.clients.write_locked();
        clients
            .entry(service.to_owned())
            .or_insert_with(|| self.build_client(service))
            .clone()
    }

    /// Registers (or replaces) the instances of a service that is not discovered, e.g. a
    /// third-party API. Clients already handed out see the change on their next call.
    pub fn register_external_service<I, S>(
        &self,
        service: &str,
        urls: I,
    ) -> Result<(), InstanceParseError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let instances = urls
            .into_iter()
            .map(|url| Instance::parse(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.static_discovery.register(service, instances);
        Ok(())
    }

    /// The client for the origin (`scheme://host:port`) of `url`, registered as an external
    /// service named `url:<origin>` the first time: one pooled connection set, one breaker
    /// and one retry budget per origin, whatever path is called on it. For endpoints that
    /// come as URLs rather than names (webhook handlers, the targets of deferred HTTP calls).
    ///
    /// ```
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let sdk = sdk::ServiceSdk::builder().build()?;
    /// let hooks = sdk.client_for_url("https://email.example.com/webhooks/user-created")?;
    /// assert_eq!(hooks.name(), "url:https://email.example.com");
    /// # Ok(()) }
    /// ```
    pub fn client_for_url(&self, url: &str) -> Result<ServiceClient, InstanceParseError> {
        let fail = |reason| InstanceParseError {
            url: sdk_base::redact_url(url).into_owned(),
            reason,
        };
        let uri: http::Uri = url.trim().parse().map_err(|_| fail("not a URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(fail("it needs a scheme and a host"));
        };
        let origin = format!("{scheme}://{authority}");
        let service = format!("url:{origin}");
        if let Some(client) = self.inner.clients.read_locked().get(&service) {
            return Ok(client.clone());
        }
        self.register_external_service(&service, [&origin])?;
        Ok(self.get_client(&service))
    }

    /// Drops every cached answer of every service.
    pub fn clear_cache(&self) {
        for client in self.inner.clients.read_locked().values() {
            client.clear_cache();
        }
    }

    /// Drops the answers cached under `key` (a named key such as `"product:123"`, or a GET
    /// path) in every service: the reference SDK's `clear_cache("product:123")`.
    pub fn clear_cache_key(&self, key: &str) {
        for client in self.inner.clients.read_locked().values() {
            client.clear_cache_key(key);
        }
    }

    /// The instances a service's calls currently go to.
    pub fn service_instances(&self, service: &str) -> Vec<Instance> {
        self.instance_set(service).current().as_ref().clone()
    }

    /// Starts a batch of named calls that run concurrently; see [`Batch`].
    pub fn batch(&self) -> Batch {
        Batch::new()
    }

    /// Runs named calls of one result type concurrently (at most 64 at once) and returns a
    /// result per name, typed and in the order given; one failure never hides the others'
    /// successes. For calls of different types, limits or a deadline, use
    /// [`batch`](Self::batch).
    ///
    /// ```no_run
    /// # use sdk::prelude::*;
    /// # #[derive(Debug, serde::Deserialize)] struct User { name: String }
    /// # async fn run(sdk: ServiceSdk) {
    /// let users = sdk.get_client("user-service");
    /// let results = sdk
    ///     .batch_call((1..=3).map(|id| {
    ///         let users = users.clone();
    ///         (format!("user-{id}"), async move {
    ///             users.get(&format!("/users/{id}")).send::<User>().await
    ///         })
    ///     }))
    ///     .await;
    /// for (name, result) in &results {
    ///     match result {
    ///         Ok(user) => println!("{name}: {}", user.name),
    ///         Err(e) => println!("{name} failed: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn batch_call<N, F, T>(
        &self,
        calls: impl IntoIterator<Item = (N, F)>,
    ) -> crate::batch::BatchCallResults<T>
    where
        N: Into<String>,
        F: std::future::Future<Output = crate::ServiceResult<T>>,
    {
        let (names, calls): (Vec<String>, Vec<_>) = calls
            .into_iter()
            .enumerate()
            .map(|(index, (name, call))| {
                let call = futures_util::FutureExt::map(call, move |result| (index, result));
                (name.into(), call)
            })
            .unzip();
        let results = crate::batch::run_all(calls, 64, None).await;
        crate::batch::BatchCallResults::new(names, results)
    }

    /// The registry this SDK discovers through (the embedded in-memory one unless the
    /// builder was given another).
    pub fn registry(&self) -> &Arc<dyn RegistryBackend> {
        &self.inner.registry
    }

    /// The instances of `service` registered in the registry, with their health.
    pub async fn discover_services(
        &self,
        service: &str,
    ) -> Result<Vec<InstanceRecord>, RegistryError> {
        self.inner.registry.instances(service).await
    }

    /// One instance of `service`, picked as the load balancer would pick it for a call, or
    /// `None` if it has none: for talking to an instance without the SDK's pipeline.
    ///
    /// ```no_run
    /// # async fn run(sdk: sdk::ServiceSdk) {
    /// if let Some(instance) = sdk.get_service_instance("chat").await {
    ///     let url = format!("{}/socket", instance.url());
    ///     // connect a WebSocket to `url` ...
    /// }
    /// # }
    /// ```
    pub async fn get_service_instance(&self, service: &str) -> Option<Instance> {
        self.get_client(service).pick_instance().await
    }

    /// Calls `hook` whenever an instance of any service goes in or out of rotation because
    /// of its health: this SDK's checks flipping it, or the registry marking it. Hooks given
    /// to the builder are called too.
    pub fn on_service_health_change<F>(&self, hook: F)
    where
        F: Fn(&HealthChange) + Send + Sync + 'static,
    {
        self.inner.health_hooks.add(Arc::new(hook));
    }

    /// Probes the instances of `service` now and reports each one's health.
    pub async fn health_check_service(&self, service: &str) -> Vec<InstanceHealth> {
        self.get_client(service).health_check().await
    }

    /// Probes every configured service and every service a client was made for.
    pub async fn all_service_health(&self) -> HashMap<String, Vec<InstanceHealth>> {
        let mut names: Vec<String> = self.inner.config.services.keys().cloned().collect();
        names.extend(self.inner.clients.read_locked().keys().cloned());
        names.sort();
        names.dedup();
        let mut report = HashMap::new();
        for name in names {
            let health = self.health_check_service(&name).await;
            report.insert(name, health);
        }
        report
    }

    /// Registers this process as `instance` in the registry, heartbeats in the background
    /// (every 30 s by default; the registry's TTL is 90 s), and deregisters when the returned
    /// [`Registration`] is dropped or [`deregistered`](Registration::deregister).
    pub async fn register_current_service(
        &self,
        instance: ServiceInstance,
    ) -> Result<Registration, RegistryError> {
        Registration::start(
            self.inner.registry.clone(),
            instance,
            self.inner.heartbeat_interval,
        )
        .await
    }

    /// One set per service: configured or externally registered instances pin it; otherwise
    /// it follows the registry (or a custom discovery).
    fn instance_set(&self, service: &str) -> InstanceSet {
        let statics = &self.inner.static_discovery;
        let set = statics.instances(service);
        if statics.has(service) {
            return set;
        }
        if !self.inner.config.service_discovery {
            // Only configured and external instances: none yet is an answer, not a wait.
            if !set.is_filled() {
                set.replace(Vec::new());
            }
            return set;
        }
        match &self.inner.custom_discovery {
            Some(discovery) => discovery.instances(service),
            None => {
                self.inner.registry_discovery.follow_into(
                    service,
                    set.clone(),
                    statics.pin(service),
                );
                set
            }
        }
    }

    fn build_client(&self, service: &str) -> ServiceClient {
        let config = self.inner.config.service(service);
        let name: Arc<str> = service.into();
        let breakers = EndpointBreakers::new(config.circuit_breaker, self.inner.classifier.clone());
        // A named breaker records its transitions as metrics.
        let breakers = Arc::new(match self.inner.config.metrics {
            true => breakers.named(name.clone()),
            false => breakers,
        });
        let cache = ResponseCache::new(config.cache.clone());
        let instances = self.instance_set(service);
        let health = Arc::new(HealthState::new(
            service,
            config.health_check.clone(),
            self.inner.health_hooks.clone(),
        ));
        let health_task = health.spawn(self.inner.http.clone(), instances.clone());
        // The balancer over the transport (and the user's middleware), with a picker sharing
        // its view for `get_service_instance`.
        let balanced = BalanceLayer::new(
            name.clone(),
            instances.clone(),
            config.attempt_timeout,
            config.load_balancer,
        )
        .with_health(health.clone())
        .with_versions(config.version.clone())
        .with_classify(self.inner.classify.clone())
        .with_host_header(self.inner.host_header)
        .layer(self.inner.http.clone());
        let picker = balanced.picker();
        // Hedges draw from the retry budget: one budget caps both.
        let retry = crate::retry::RetryPolicy::new(&config.retry);
        let hedge = crate::hedge::HedgeLayer::new(
            name.clone(),
            config.hedge,
            retry.budget(),
            self.inner.config.metrics,
        );
        // The pipeline, outermost first, in the order the README gives: the deadline, the
        // cache, the retry loop, then each attempt's stages. The deadline is stamped before
        // the cache, so a call waiting on another's cache fill is bounded by its own.
        let attempts = tower::ServiceBuilder::new()
            .layer(hedge)
            .layer(CircuitBreakerLayer::new(breakers.clone()))
            .service(balanced);
        let pipeline = Pipeline {
            deadline: DeadlineLayer::new(config.timeout),
            cache: cache.clone(),
            retry,
            attempts,
        };
        let sensitive_headers: Arc<[http::HeaderName]> =
            self.inner.config.sensitive_headers.clone().into();
        let mut default_headers: HeaderMap = config.headers.iter().cloned().collect();
        crate::redact::mark_sensitive(&mut default_headers, &sensitive_headers);
        ServiceClient::from_inner(ClientInner {
            name,
            pipeline,
            breakers,
            cache,
            default_headers,
            hooks: self.inner.hooks.clone(),
            metrics: self
                .inner
                .config
                .metrics
                .then(|| crate::telemetry::CallMetrics::new(service.into())),
            error_body_limit: self.inner.config.error_body_limit,
            sensitive_headers,
            health,
            health_task,
            instances,
            picker,
            http: self.inner.http.clone(),
        })
    }
}

impl Drop for SdkInner {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl fmt::Debug for ServiceSdk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceSdk")
            .field(
                "services",
                &self.inner.config.services.keys().collect::<Vec<_>>(),
            )
            .field("http", &self.inner.http)
            .field("hooks", &self.inner.hooks)
            .finish_non_exhaustive()
    }
}
