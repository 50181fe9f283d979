//! The registry's data model: services, their instances, and each instance's health.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

use crate::RegistryError;

/// How an instance is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// One running copy of a service, as it registers itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// Unique within the service (e.g. `orders-7f3a`).
    pub id: String,
    /// The logical service name (e.g. `order-service`).
    pub service: String,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The deployed version, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free-form labels (region, zone, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Path answering 2xx when the instance is healthy (e.g. `/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
}

/// Where an instance listens: `("10.0.0.7", 8081)` or a `SocketAddr`. A type of its own so
/// the host cannot be swapped with the service name or the id in [`ServiceInstance::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    host: String,
    port: u16,
}

impl<H: Into<String>> From<(H, u16)> for Address {
    fn from((host, port): (H, u16)) -> Self {
        Address {
            host: host.into(),
            port,
        }
    }
}

impl From<std::net::SocketAddr> for Address {
    fn from(addr: std::net::SocketAddr) -> Self {
        Address {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl ServiceInstance {
    /// An instance of `service` at `address`, over HTTP, with the id `host-port` (IPv6
    /// colons as dashes) until [`with_id`](Self::with_id) names it.
    ///
    /// ```
    /// use sdk_registry::ServiceInstance;
    ///
    /// let instance = ServiceInstance::new("orders", ("10.0.0.7", 8081)).with_id("orders-1");
    /// assert_eq!(instance.url(), "http://10.0.0.7:8081");
    /// let unnamed = ServiceInstance::new("orders", "127.0.0.1:8081".parse::<std::net::SocketAddr>()?);
    /// assert_eq!(unnamed.id, "127.0.0.1-8081");
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn new(service: impl Into<String>, address: impl Into<Address>) -> Self {
        let Address { host, port } = address.into();
        let id = format!("{host}-{port}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        ServiceInstance {
            id,
            service: service.into(),
            scheme: Scheme::Http,
            host,
            port,
            version: None,
            metadata: BTreeMap::new(),
            health_check_path: None,
        }
    }

    /// Names the instance (unique within its service, e.g. `orders-7f3a`).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Reached over HTTPS.
    #[must_use]
    pub fn https(mut self) -> Self {
        self.scheme = Scheme::Https;
        self
    }

    /// The deployed version (e.g. `2.3.1`).
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Adds a label (region, zone, ...).
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The path that answers 2xx while the instance is healthy (e.g. `/health`).
    #[must_use]
    pub fn with_health_check(mut self, path: impl Into<String>) -> Self {
        self.health_check_path = Some(path.into());
        self
    }

    /// The base URL, `scheme://host:port` (IPv6 hosts bracketed).
    pub fn url(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }

    /// Checks the fields, naming the first bad one.
    ///
    /// ```
    /// use sdk_registry::ServiceInstance;
    ///
    /// assert!(ServiceInstance::new("orders", ("10.0.0.7", 8080)).validate().is_ok());
    /// assert!(ServiceInstance::new("orders", ("bad host", 8080)).validate().is_err());
    /// assert!(ServiceInstance::new("", ("10.0.0.7", 8080)).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), RegistryError> {
        validate_name("service", &self.service)?;
        validate_name("id", &self.id)?;
        validate_host(&self.host)?;
        let invalid = |field: &'static str, reason: &str| {
            Err(RegistryError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.port == 0 {
            return invalid("port", "must be 1-65535");
        }
        if let Some(path) = &self.health_check_path {
            let path_ok = path.starts_with('/')
                && !path.starts_with("//")
                && path.len() <= 1024
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
            if !path_ok {
                return invalid("health_check_path", "a path starting with `/`");
            }
        }
        if self.metadata.len() > 64
            || self
                .metadata
                .iter()
                .any(|(k, v)| k.len() > 128 || v.len() > 1024)
        {
            return invalid(
                "metadata",
                "at most 64 labels, keys up to 128 and values up to 1024 bytes",
            );
        }
        if self.version.as_ref().is_some_and(|v| v.len() > 128) {
            return invalid("version", "at most 128 bytes");
        }
        Ok(())
    }
}

/// Checks a service name or an instance id: 1-128 letters, digits, `-`, `_` or `.`, and
/// not `.` or `..`, so it is safe as a URL path segment and as a key component. This is the
/// one rule: the model, the server's routes and every backend call it.
///
/// ```
/// use sdk_registry::validate_name;
///
/// assert!(validate_name("service", "order-service").is_ok());
/// assert!(validate_name("service", "..").is_err());
/// assert!(validate_name("id", "a/b").is_err());
/// ```
pub fn validate_name(field: &'static str, value: &str) -> Result<(), RegistryError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        return Ok(());
    }
    let mut shown: String = value.chars().take(64).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    Err(RegistryError::Invalid {
        field,
        reason: format!(
            "`{}` is not a name: use 1-128 letters, digits, `-`, `_` or `.` (not `.` or `..`)",
            shown.escape_debug()
        ),
    })
}

/// Checks a host: a DNS name, an IPv4 address, or an IPv6 address (bare or in brackets).
/// A port or anything else after the host is refused, since [`ServiceInstance::url`] adds
/// the port itself.
fn validate_host(host: &str) -> Result<(), RegistryError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ipv6 = bare.parse::<std::net::Ipv6Addr>().is_ok();
    let dns = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ipv6 || dns {
        return Ok(());
    }
    Err(RegistryError::Invalid {
        field: "host",
        reason: "a host name or an IP address, without a port".to_owned(),
    })
}

/// What the registry knows of an instance's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Not checked yet; traffic may go to it.
    #[default]
    Unknown,
    /// Heartbeating and passing checks.
    Healthy,
    /// Failing its health checks.
    Unhealthy,
}

/// A registered instance with what the registry knows about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance as registered.
    pub instance: ServiceInstance,
    /// Its health.
    pub health: HealthStatus,
    /// Unix time (milliseconds) of the last heartbeat or registration.
    pub last_heartbeat_ms: u64,
}
