//! The gateway's settings, from the same TOML file as the SDK's: `[routes.NAME]` for each
//! route, `[gateway.jwt]`, `[gateway.clients]` and `[gateway.rate_limit]` for the rest. The
//! SDK reads `[sdk]` and `[services.NAME]` (how each service is found and called) from the
//! same file, with the same `${VAR}` substitution; a secret the environment supplied never
//! appears in an error.
//!
//! ```
//! let sdk = sdk::SdkConfig::from_toml_str(r#"
//!     [routes.users]
//!     path = "/api/users/{user_id}"
//!     service = "user-service"
//!     rewrite = "/users/{user_id}"
//!     protected = true
//!     timeout = "2s"
//!     rate_limit = { per_second = 100, burst = 200 }
//!
//!     [gateway.jwt]
//!     hs256_secret = "${JWT_SECRET:a-secret-of-32-bytes-or-more-please}"
//! "#)?;
//! let config = sdk_gateway::GatewayConfig::from_sdk_config(&sdk)?;
//! assert_eq!(config.routes[0].service, "user-service");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{collections::BTreeMap, time::Duration};

use sdk::config::de;
use serde::Deserialize;

/// Everything the gateway is configured with.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The routes, in the order of their names.
    pub routes: Vec<RouteConfig>,
    /// How tokens are checked on protected routes (`[gateway.jwt]`).
    pub jwt: Option<JwtConfig>,
    /// Who the clients are (`[gateway.clients]`).
    pub clients: ClientsConfig,
    /// Where rate limits are kept (`[gateway.rate_limit]`).
    pub rate_limit: SharedLimitConfig,
}

/// One route: requests whose path matches `path` (axum's syntax: `{name}` for one segment,
/// `{*name}` for the rest) go to `service`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// The route's name (its `[routes.NAME]` key): in metrics and logs.
    #[serde(skip)]
    pub name: String,
    /// The path pattern, e.g. `/api/users/{user_id}`.
    pub path: String,
    /// The service: a name, or a `{param}` of the path (`/ws/{service}`).
    pub service: String,
    /// The path sent to the service, with the pattern's `{param}`s filled in (default: the
    /// request's own path). The query string is kept.
    #[serde(default)]
    pub rewrite: Option<String>,
    /// The methods the route takes (default: any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Whether a valid token is needed.
    #[serde(default)]
    pub protected: bool,
    /// Scopes the token must grant (its `scope` claim, space-separated, or `scp` list);
    /// a valid token without them is answered 403.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Time for the service's answer to begin, across retries (default: the service's
    /// `timeout`).
    #[serde(default, deserialize_with = "de::some_duration")]
    pub timeout: Option<Duration>,
    /// Requests allowed per client.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// A WebSocket route: the upgrade is forwarded and frames flow both ways.
    #[serde(default)]
    pub websocket: bool,
}

/// A rate: `per_second` (or `per_minute`) requests on average, `burst` at once (default:
/// one second's, or one minute's, worth).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests a second, sustained.
    #[serde(default)]
    pub per_second: u32,
    /// Requests a minute, sustained: for allowances slower than one a second (set this or
    /// `per_second`, not both).
    #[serde(default)]
    pub per_minute: u32,
    /// Requests allowed at once after a quiet spell (default the rate's count).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// The burst, at least 1.
    pub fn burst(&self) -> u32 {
        let count = match self.per_second {
            0 => self.per_minute,
            n => n,
        };
        self.burst.unwrap_or(count).max(1)
    }

    /// The time one request's allowance takes to come back (at least 1 µs).
    pub fn interval(&self) -> Duration {
        let interval = match (self.per_second, self.per_minute) {
            (0, 0) => Duration::from_secs(1),
            (0, n) => Duration::from_secs(60) / n,
            (n, _) => Duration::from_secs(1) / n,
        };
        interval.max(Duration::from_micros(1))
    }
}

/// How tokens are verified: an HS256 secret, a JWKS URL (RS256, ES256 keys), or both.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The HS256 secret (at least 32 bytes).
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// Where the public keys are published (a JWKS document).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The `iss` tokens must carry, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The `aud` tokens must carry, if set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock difference allowed on `exp` and `nbf` (default 30 s).
    #[serde(default = "default_leeway", deserialize_with = "de::duration")]
    pub leeway: Duration,
    /// Claims sent on to the service as headers: claim name → header name. Headers of
    /// these names that the client sent are removed first.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// How long fetched keys are used before they are fetched again (default 5 min).
    #[serde(default = "default_jwks_ttl", deserialize_with = "de::duration")]
    pub jwks_ttl: Duration,
    /// The shortest time between two fetches for an unknown `kid` (default 10 s), so a
    /// stream of made-up key ids cannot turn the gateway against the key server.
    #[serde(default = "default_refetch", deserialize_with = "de::duration")]
    pub jwks_min_refetch: Duration,
    /// How long a token that passed is remembered, so it is not checked again on every
    /// request (default 30 s, never past its `exp`; `"0s"`: check every time). A key
    /// removed from the JWKS stops being accepted within this time.
    #[serde(default = "default_verified_ttl", deserialize_with = "de::duration")]
    pub verified_token_ttl: Duration,
}

fn default_verified_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_jwks_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_refetch() -> Duration {
    Duration::from_secs(10)
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "jwks_url",
                &self.jwks_url.as_deref().map(sdk_base::redact_url),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("forward_claims", &self.forward_claims)
            .field("verified_token_ttl", &self.verified_token_ttl)
            .finish_non_exhaustive()
    }
}

/// Who a client is, for rate limits and `x-forwarded-for`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientsConfig {
    /// Proxies in front of the gateway (addresses or CIDR blocks) whose `x-forwarded-for`
    /// is believed; from anyone else it is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The registry dashboard the gateway's `/` links to.
    #[serde(default)]
    pub dashboard_url: Option<String>,
}

/// Where rate limits are counted: in this process (default), or in Redis, shared by every
/// gateway that names the same server and prefix.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SharedLimitConfig {
    /// `redis://host:port/db`: limits shared through this Redis.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The prefix of the Redis keys (default `sdk-gateway`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// How long a check may wait for Redis before the gateway counts locally (default
    /// 250 ms).
    #[serde(default = "default_limit_timeout", deserialize_with = "de::duration")]
    pub timeout: Duration,
}

impl Default for SharedLimitConfig {
    fn default() -> Self {
        SharedLimitConfig {
            redis_url: None,
            key_prefix: None,
            timeout: default_limit_timeout(),
        }
    }
}

fn default_limit_timeout() -> Duration {
    Duration::from_millis(250)
}

impl std::fmt::Debug for SharedLimitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimitConfig")
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(sdk_base::redact_url),
            )
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A setting that is not right.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    /// The file, as the SDK reads it.
    #[error(transparent)]
    Sdk(#[from] sdk::ConfigError),
    /// A gateway setting.
    #[error("{key}: {reason}")]
    Invalid {
        /// The setting, e.g. `routes.users.path`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> GatewayConfigError {
    GatewayConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl GatewayConfig {
    /// The gateway's sections of a file the SDK has read, checked.
    pub fn from_sdk_config(config: &sdk::SdkConfig) -> Result<Self, GatewayConfigError> {
        let mut routes = Vec::new();
        let mut table = matchit::Router::new();
        for (name, mut route) in config.extension::<RouteConfig>("routes")? {
            route.name = name;
            route.check()?;
            if let Err(e) = table.insert(route.path.clone(), route.name.clone()) {
                let reason = match &e {
                    matchit::InsertError::Conflict { with } => {
                        let other = routes
                            .iter()
                            .find(|r: &&RouteConfig| r.path == *with)
                            .map_or(with.as_str(), |r| r.name.as_str());
                        format!("`{}` conflicts with the route `{other}`", route.path)
                    }
                    other => other.to_string(),
                };
                return Err(invalid(format!("routes.{}.path", route.name), reason));
            }
            routes.push(route);
        }
        let mut gateway = GatewayConfig {
            routes,
            ..GatewayConfig::default()
        };
        for (name, value) in config.extension::<toml::Value>("gateway")? {
            let key = format!("gateway.{name}");
            match name.as_str() {
                "jwt" => gateway.jwt = Some(section(value, &key)?),
                "clients" => gateway.clients = section(value, &key)?,
                "rate_limit" => gateway.rate_limit = section(value, &key)?,
                _ => return Err(invalid(key, "unknown section (jwt, clients, rate_limit)")),
            }
        }
        if let Some(jwt) = &gateway.jwt {
            jwt.check()?;
        }
        if gateway.jwt.is_none() {
            if let Some(route) = gateway.routes.iter().find(|r| r.protected) {
                return Err(invalid(
                    format!("routes.{}.protected", route.name),
                    "a protected route needs [gateway.jwt]",
                ));
            }
        }
        Ok(gateway)
    }
}

fn section<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    key: &str,
) -> Result<T, GatewayConfigError> {
    T::deserialize(value).map_err(|e| invalid(key, e.to_string().trim().replace('\n', " ")))
}

/// The gateway's own paths, which no route may take.
const RESERVED: [&str; 3] = ["/", "/health", "/metrics"];

impl RouteConfig {
    fn check(&self) -> Result<(), GatewayConfigError> {
        let key = |field: &str| format!("routes.{}.{field}", self.name);
        if !self.path.starts_with('/') {
            return Err(invalid(key("path"), "must start with `/`"));
        }
        if RESERVED.contains(&self.path.as_str()) {
            return Err(invalid(
                key("path"),
                format!(
                    "`{}` is the gateway's own (/, /health, /metrics)",
                    self.path
                ),
            ));
        }
        let params = crate::template::params(&self.path).map_err(|e| invalid(key("path"), e))?;
        match crate::template::single_param(&self.service) {
            Some(param) if !params.iter().any(|p| p == param) => {
                return Err(invalid(
                    key("service"),
                    format!("`{{{param}}}` is not in the path"),
                ))
            }
            Some(_) => {}
            None => sdk_registry::validate_name("service", &self.service)
                .map_err(|e| invalid(key("service"), e.to_string()))?,
        }
        if let Some(rewrite) = &self.rewrite {
            if !rewrite.starts_with('/') {
                return Err(invalid(key("rewrite"), "must start with `/`"));
            }
            for used in crate::template::params(rewrite).map_err(|e| invalid(key("rewrite"), e))? {
                if !params.contains(&used) {
                    return Err(invalid(
                        key("rewrite"),
                        format!("`{{{used}}}` is not in the path"),
                    ));
                }
            }
        }
        for method in &self.methods {
            http::Method::from_bytes(method.as_bytes())
                .map_err(|_| invalid(key("methods"), format!("`{method}` is not a method")))?;
        }
        if let Some(limit) = self.rate_limit {
            match (limit.per_second, limit.per_minute) {
                (0, 0) => {
                    return Err(invalid(
                        key("rate_limit.per_second"),
                        "must be at least 1 (or set per_minute)",
                    ))
                }
                (0, _) | (_, 0) => {}
                _ => {
                    return Err(invalid(
                        key("rate_limit"),
                        "per_second and per_minute cannot both be set",
                    ))
                }
            }
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(invalid(key("timeout"), "must be greater than zero"));
        }
        Ok(())
    }
}

impl JwtConfig {
    fn check(&self) -> Result<(), GatewayConfigError> {
        if self.hs256_secret.is_none() && self.jwks_url.is_none() {
            return Err(invalid("gateway.jwt", "set hs256_secret, jwks_url or both"));
        }
        if self.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(invalid(
                "gateway.jwt.hs256_secret",
                "must be at least 32 bytes (RFC 7518, 3.2)",
            ));
        }
        for (claim, header) in &self.forward_claims {
            http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                invalid(
                    format!("gateway.jwt.forward_claims.{claim}"),
                    format!("`{header}` is not a header name"),
                )
            })?;
        }
        Ok(())
    }
}
