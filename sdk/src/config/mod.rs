//! Configuration: [`SdkConfig`] for the SDK, [`ServiceConfig`] per service, loaded from code
//! or from a TOML file (see the README's configuration reference).
//!
//! A file's `[defaults]` apply to every service; each `[services.NAME]` section overrides
//! them. Every string may use `${VAR}` or `${VAR:default}`. Mistakes are reported with the
//! file, the key and what is wrong:
//!
//! ```text
//! services.toml: services.orders.retry.max_attempts: must be at least 1 (0 would never call the service)
//! ```

pub mod de;
mod env;
mod file;

pub use crate::settings::units;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use http::{HeaderName, HeaderValue};

pub use self::units::{parse_duration, parse_size};
use crate::{
    redact::{is_secret_header, RedactedHeaders},
    settings::{BreakerConfig, CacheConfig, HealthCheckConfig, LoadBalancerConfig, RetryConfig},
    transport::TransportConfig,
    version::VersionSelector,
};

/// Settings of the whole SDK.
#[derive(Clone)]
pub struct SdkConfig {
    /// Settings every service starts from.
    pub defaults: ServiceConfig,
    /// Per-service settings (already merged over `defaults`).
    pub services: BTreeMap<String, ServiceConfig>,
    /// The HTTP transport.
    pub transport: TransportConfig,
    /// How much of an error response's body is kept in `ServiceError::Status` (default 64 KiB).
    pub error_body_limit: usize,
    /// The `sdk-registry` server to discover through (default: the embedded registry).
    pub registry_url: Option<String>,
    /// The bearer token for the registry server's writes (never printed).
    pub registry_token: Option<String>,
    /// The etcd cluster to discover through (instead of a registry server).
    pub etcd: Option<EtcdConfig>,
    /// Header names whose values are never printed, beyond the built-in ones
    /// (`authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`,
    /// `x-auth-token`); e.g. `x-session`, `private-token` (default: none).
    pub sensitive_headers: Vec<HeaderName>,
    /// Find instances of services without configured ones through the registry (default
    /// true); false: only configured and external instances are called.
    pub service_discovery: bool,
    /// Record call and breaker metrics (default true; with no recorder installed they cost
    /// a check of an empty handle).
    pub metrics: bool,
    /// The file's sections for the crates beside the SDK (`[messaging.NAME]`), read with
    /// [`extension`](Self::extension).
    extensions: Extensions,
}

/// Sections of a config file the SDK keeps for the crates beside it, with what is needed
/// to report their mistakes as its own are (file, key, no value from the environment).
#[derive(Clone, Default)]
pub(crate) struct Extensions {
    /// `messaging` → its `[messaging.NAME]` tables, `${VAR}` already substituted.
    pub(crate) sections: BTreeMap<String, toml::Table>,
    pub(crate) file: Option<PathBuf>,
    /// Values the environment supplied (never printed in an error).
    pub(crate) supplied: std::sync::Arc<[(String, String)]>,
}

impl Default for SdkConfig {
    fn default() -> Self {
        SdkConfig {
            defaults: ServiceConfig::default(),
            services: BTreeMap::new(),
            transport: TransportConfig::default(),
            error_body_limit: 64 * 1024,
            registry_url: None,
            registry_token: None,
            etcd: None,
            sensitive_headers: Vec::new(),
            service_discovery: true,
            metrics: true,
            extensions: Extensions::default(),
        }
    }
}

/// Discovery through etcd (`[sdk] etcd_endpoints`, `etcd_prefix`, `etcd_lease_ttl`,
/// `etcd_user`, `etcd_password`).
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// The cluster's client URLs (`http://host:2379` or `https://host:2379`), tried in turn.
    pub endpoints: Vec<String>,
    /// The key prefix instances live under (default `/sdk-registry/services/`).
    pub prefix: String,
    /// The lease TTL of instances this process registers (default 90 s).
    pub lease_ttl: Duration,
    /// The etcd user, when the cluster has authentication enabled.
    pub user: Option<String>,
    /// Its password (never printed).
    pub password: Option<String>,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<_> = self
            .endpoints
            .iter()
            .map(|e| sdk_base::redact_url(e))
            .collect();
        f.debug_struct("EtcdConfig")
            .field("endpoints", &endpoints)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl EtcdConfig {
    /// The registry these settings describe, for discovery: the one place that turns
    /// `etcd_endpoints` into a backend, or says the program was built without etcd.
    pub(crate) fn registry(
        &self,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<std::sync::Arc<dyn sdk_registry::RegistryBackend>, ConfigError> {
        #[cfg(feature = "etcd")]
        {
            let backend = self
                .backend_with_tls(tls)
                .map_err(|e| ConfigError::invalid("sdk.etcd_endpoints", e.to_string()))?;
            Ok(std::sync::Arc::new(backend))
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = tls;
            Err(ConfigError::invalid(
                "sdk.etcd_endpoints",
                "this program was built without etcd: turn on the `etcd` feature of the `sdk` crate",
            ))
        }
    }

    /// The cluster at `endpoints`, with the default prefix and TTL and no authentication.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            prefix: sdk_registry::DEFAULT_ETCD_PREFIX.to_owned(),
            lease_ttl: Duration::from_secs(90),
            user: None,
            password: None,
        }
    }

    /// The backend these settings describe (HTTPS trusting the Mozilla roots).
    #[cfg(feature = "etcd")]
    pub fn backend(&self) -> Result<sdk_registry::EtcdBackend, sdk_registry::RegistryError> {
        self.backend_with_tls(None)
    }

    /// The backend these settings describe, with `tls` for `https://` endpoints if given.
    #[cfg(feature = "etcd")]
    pub fn backend_with_tls(
        &self,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<sdk_registry::EtcdBackend, sdk_registry::RegistryError> {
        let backend = match tls {
            Some(tls) => sdk_registry::EtcdBackend::with_tls(&self.endpoints, tls)?,
            None => sdk_registry::EtcdBackend::new(&self.endpoints)?,
        };
        let backend = backend.with_prefix(&self.prefix).with_ttl(self.lease_ttl);
        Ok(match &self.user {
            Some(user) => backend.with_credentials(user, self.password.as_deref().unwrap_or("")),
            None => backend,
        })
    }
}

impl std::fmt::Debug for SdkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkConfig")
            .field("defaults", &self.defaults)
            .field("services", &self.services)
            .field("transport", &self.transport)
            .field("error_body_limit", &self.error_body_limit)
            .field(
                "registry_url",
                &self.registry_url.as_deref().map(sdk_base::redact_url),
            )
            .field(
                "registry_token",
                &self.registry_token.as_ref().map(|_| "[redacted]"),
            )
            .field("etcd", &self.etcd)
            .field("sensitive_headers", &self.sensitive_headers)
            .field("service_discovery", &self.service_discovery)
            .field("metrics", &self.metrics)
            .field(
                "extensions",
                &self.extensions.sections.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SdkConfig {
    /// The defaults: see each setting's documentation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a TOML file.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            file: path.clone(),
            source,
        })?;
        file::parse(&text, Some(&path), &|name| std::env::var(name).ok())
    }

    /// Parses TOML text (`${VAR}` resolved from the process environment).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        file::parse(text, None, &|name| std::env::var(name).ok())
    }

    /// The `[section.NAME]` tables of a section the SDK keeps for a crate beside it (today
    /// `messaging`, read by `sdk-messaging`), each deserialized as a `T`. `${VAR}` is
    /// substituted as everywhere; an error names the file and the key
    /// (`messaging.orders.url`) and never repeats a value the environment supplied. A file
    /// without the section gives an empty map.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Connection {
    ///     url: String,
    /// }
    ///
    /// let config = sdk::SdkConfig::from_toml_str(
    ///     "[messaging.events]\nurl = \"${NATS_URL:nats://127.0.0.1:4222}\"",
    /// )?;
    /// let connections = config.extension::<Connection>("messaging")?;
    /// assert_eq!(connections["events"].url, "nats://127.0.0.1:4222");
    /// # Ok::<(), sdk::ConfigError>(())
    /// ```
    pub fn extension<T: serde::de::DeserializeOwned>(
        &self,
        section: &str,
    ) -> Result<BTreeMap<String, T>, ConfigError> {
        file::extension(&self.extensions, section)
    }

    /// The settings of `service`: its own section, or the defaults.
    pub fn service(&self, service: &str) -> &ServiceConfig {
        self.services.get(service).unwrap_or(&self.defaults)
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.defaults.validate("defaults")?;
        for (name, service) in &self.services {
            service.validate(&format!("services.{name}"))?;
        }
        if self.transport.max_response_bytes == 0 {
            return Err(ConfigError::invalid(
                "sdk.max_response_bytes",
                "must be greater than zero",
            ));
        }
        if self.transport.connect_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "sdk.connect_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

pub(crate) use crate::settings::Check;
pub use crate::settings::MIN_INTERVAL;

/// Settings of one service.
///
/// It is also the schema of a config file's `[defaults]` and `[services.NAME]` sections
/// (each section's keys are these fields), so it can be embedded in an application's own
/// serde config:
///
/// ```
/// let orders: sdk::ServiceConfig = toml::from_str(r#"
///     instances = ["http://127.0.0.1:8080"]
///     timeout = "2s"
///     [retry]
///     max_attempts = 2
/// "#).expect("valid");
/// assert_eq!(orders.retry.max_attempts, 2);
/// assert!(orders.validate("orders").is_ok());
/// ```
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// Instance base URLs (`http://host:port[/base]`), when not discovered.
    pub instances: Vec<String>,
    /// Overall deadline of a call across retries (default 30 s).
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Deadline of one attempt (default: none beyond the overall deadline).
    #[serde(deserialize_with = "de::some_duration")]
    pub attempt_timeout: Option<Duration>,
    /// Retries.
    pub retry: RetryConfig,
    /// Circuit breaking per endpoint.
    pub circuit_breaker: BreakerConfig,
    /// Response caching.
    pub cache: CacheConfig,
    /// Load balancing over instances and passive ejection.
    pub load_balancer: LoadBalancerConfig,
    /// Active health checks of the instances (off by default).
    pub health_check: HealthCheckConfig,
    /// Headers sent on every request to the service (secret ones are redacted in logs).
    #[serde(deserialize_with = "de::headers")]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The instance versions calls may go to: a requirement (`"^2"`) or a weighted split
    /// (`{ "^1" = 90, "^2" = 10 }`); default: any instance. See [`version`](crate::version).
    #[serde(deserialize_with = "de::versions")]
    pub version: Option<VersionSelector>,
    /// Hedged requests for the service's idempotent calls (off by default); see
    /// [`hedge`](mod@crate::hedge).
    pub hedge: Option<crate::settings::HedgeConfig>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            instances: Vec::new(),
            timeout: Duration::from_secs(30),
            attempt_timeout: None,
            retry: RetryConfig::default(),
            circuit_breaker: BreakerConfig::default(),
            cache: CacheConfig::default(),
            load_balancer: LoadBalancerConfig::default(),
            health_check: HealthCheckConfig::default(),
            headers: Vec::new(),
            version: None,
            hedge: None,
        }
    }
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: http::HeaderMap = self.headers.iter().cloned().collect();
        f.debug_struct("ServiceConfig")
            .field("instances", &self.instances)
            .field("timeout", &self.timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("retry", &self.retry)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("cache", &self.cache)
            .field("load_balancer", &self.load_balancer)
            .field("health_check", &self.health_check)
            .field("headers", &RedactedHeaders(&headers))
            .field("version", &self.version.as_ref().map(ToString::to_string))
            .field("hedge", &self.hedge)
            .finish()
    }
}

impl ServiceConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an instance base URL.
    #[must_use]
    pub fn instance(mut self, url: impl Into<String>) -> Self {
        self.instances.push(url.into());
        self
    }

    /// Sets the overall deadline (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the per-attempt deadline (default: none).
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets the retry settings (default: 3 attempts, 100 ms doubling to 1 s, full jitter).
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the breaker settings (default: 5 failures, 60 s open, 2 successes to close).
    #[must_use]
    pub fn circuit_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.circuit_breaker = breaker;
        self
    }

    /// Sets the cache settings (default: off, 60 s TTL when on).
    #[must_use]
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Sets load balancing and ejection (default: power of two choices over peak-EWMA;
    /// eject after 5 failures in a row for 30 s).
    #[must_use]
    pub fn load_balancer(mut self, load_balancer: LoadBalancerConfig) -> Self {
        self.load_balancer = load_balancer;
        self
    }

    /// Sets active health checks (default: off; when on, `GET /health` every 30 s, 5 s
    /// timeout, 3 failures to mark an instance unhealthy).
    #[must_use]
    pub fn health_check(mut self, health_check: HealthCheckConfig) -> Self {
        self.health_check = health_check;
        self
    }

    /// Adds a header sent with every request (default: none).
    #[must_use]
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        if is_secret_header(&name) {
            value.set_sensitive(true);
        }
        self.headers.push((name, value));
        self
    }

    /// Sends calls only to instances of these versions: a requirement
    /// (`VersionSelector::require("^2")`) or a weighted split (default: any instance).
    #[must_use]
    pub fn version(mut self, selector: VersionSelector) -> Self {
        self.version = Some(selector);
        self
    }

    /// Hedges the service's slow idempotent calls (default: off); see
    /// [`hedge`](mod@crate::hedge).
    #[must_use]
    pub fn hedge(mut self, hedge: crate::settings::HedgeConfig) -> Self {
        self.hedge = Some(hedge);
        self
    }

    /// Checks the settings; `prefix` names the section in the error (`services.orders`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::invalid(format!("{prefix}.{key}"), message))
        };
        if self.timeout.is_zero() {
            return bad("timeout", "must be greater than zero".into());
        }
        if let Some(attempt) = self.attempt_timeout {
            if attempt.is_zero() {
                return bad("attempt_timeout", "must be greater than zero".into());
            }
            if attempt > self.timeout {
                return bad(
                    "attempt_timeout",
                    format!(
                        "{attempt:?} is longer than the overall timeout {:?}, so it could never fire; \
                         make it shorter or raise `timeout`",
                        self.timeout
                    ),
                );
            }
        }
        let section = |name: &str, checked: Check| {
            checked.map_err(|(key, message)| {
                ConfigError::invalid(format!("{prefix}.{name}.{key}"), message)
            })
        };
        section("retry", self.retry.check())?;
        section("circuit_breaker", self.circuit_breaker.check())?;
        section("load_balancer", self.load_balancer.check())?;
        section("health_check", self.health_check.check())?;
        section("cache", self.cache.check())?;
        if let Some(hedge) = &self.hedge {
            section("hedge", hedge.check())?;
        }
        for url in &self.instances {
            if let Err(e) = crate::instances::Instance::parse(url) {
                return bad("instances", e.to_string());
            }
        }
        Ok(())
    }
}

/// A configuration mistake, naming the file, the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}{message}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
    Syntax {
        /// The file, when read from one.
        file: Option<PathBuf>,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A setting has a wrong type or value.
    #[error("{}{key}: {message}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        file: Option<PathBuf>,
        /// The dotted key, e.g. `services.orders.retry.max_attempts`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// The error with every value the environment supplied (`${NAME}`) replaced by
    /// `${NAME}`, so it is never printed.
    pub(crate) fn without_values(self, supplied: &[(String, String)]) -> Self {
        match self {
            ConfigError::Invalid { file, key, message } => {
                let message = supplied.iter().fold(message, |message, (name, value)| {
                    message.replace(value.as_str(), &format!("${{{name}}}"))
                });
                ConfigError::Invalid { file, key, message }
            }
            other => other,
        }
    }

    pub(crate) fn in_file(self, path: Option<&std::path::Path>) -> Self {
        match self {
            ConfigError::Invalid {
                file: None,
                key,
                message,
            } => ConfigError::Invalid {
                file: path.map(Into::into),
                key,
                message,
            },
            other => other,
        }
    }

    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
