//! The TOML file: `[sdk]`, `[defaults]` and `[services.NAME]`.
//!
//! Every string is `${VAR}`-substituted first. Each service's table is then `[defaults]`
//! merged under it key by key (tables recursively), and deserialized into the real
//! [`ServiceConfig`] (whose fields say how each value is read, with `#[serde(default)]`);
//! the result is validated by each type's own check.

use std::{path::Path, time::Duration};

use http::HeaderName;
use serde::Deserialize;

use super::{de, env::substitute, ConfigError, EtcdConfig, SdkConfig};
use crate::transport::TransportConfig;

/// The `[sdk]` section.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SdkSection {
    #[serde(deserialize_with = "de::size")]
    max_response_bytes: usize,
    #[serde(deserialize_with = "de::size")]
    error_body_limit: usize,
    #[serde(deserialize_with = "de::duration")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "de::duration")]
    pool_idle_timeout: Duration,
    #[serde(deserialize_with = "de::lenient")]
    pool_max_idle_per_host: usize,
    #[serde(deserialize_with = "de::lenient")]
    http2_prior_knowledge: bool,
    user_agent: Option<String>,
    registry_url: Option<String>,
    registry_token: Option<String>,
    etcd_endpoints: Option<Vec<String>>,
    etcd_prefix: Option<String>,
    #[serde(deserialize_with = "de::some_duration")]
    etcd_lease_ttl: Option<Duration>,
    etcd_user: Option<String>,
    etcd_password: Option<String>,
    #[serde(deserialize_with = "de::header_names")]
    sensitive_headers: Vec<HeaderName>,
    #[serde(deserialize_with = "de::lenient")]
    service_discovery: bool,
    #[serde(deserialize_with = "de::lenient")]
    metrics: bool,
}

impl Default for SdkSection {
    fn default() -> Self {
        let transport = TransportConfig::default();
        let sdk = SdkConfig::new();
        SdkSection {
            max_response_bytes: transport.max_response_bytes,
            error_body_limit: sdk.error_body_limit,
            connect_timeout: transport.connect_timeout,
            pool_idle_timeout: transport.pool_idle_timeout,
            pool_max_idle_per_host: transport.pool_max_idle_per_host,
            http2_prior_knowledge: transport.http2_prior_knowledge,
            user_agent: None,
            registry_url: None,
            registry_token: None,
            etcd_endpoints: None,
            etcd_prefix: None,
            etcd_lease_ttl: None,
            etcd_user: None,
            etcd_password: None,
            sensitive_headers: Vec::new(),
            service_discovery: sdk.service_discovery,
            metrics: sdk.metrics,
        }
    }
}

pub(super) fn parse(
    text: &str,
    file: Option<&Path>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SdkConfig, ConfigError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.map(Into::into),
        message: e.to_string(),
    })?;
    // What the environment supplied, so no error message repeats it (a secret in the wrong
    // place must not end up in a log through the error that says it is misplaced).
    let supplied = std::cell::RefCell::new(Vec::<(String, String)>::new());
    let recording = |name: &str| {
        let value = lookup(name);
        // Values under four characters (ports, flags) are left: scrubbing them would garble
        // the message, and they are not secrets.
        if let Some(value) = value.as_ref().filter(|v| v.len() >= 4) {
            supplied.borrow_mut().push((name.to_owned(), value.clone()));
        }
        value
    };
    substitute_tree(&mut value, &mut Vec::new(), &recording).map_err(|e| e.in_file(file))?;
    let supplied = supplied.into_inner();
    let scrub = |e: ConfigError| e.in_file(file).without_values(&supplied);
    let mut config = build(value)
        .and_then(|config| config.validate().map(|()| config))
        .map_err(scrub)?;
    config.extensions.file = file.map(Into::into);
    config.extensions.supplied = supplied.into();
    Ok(config)
}

/// Deserializes each `[section.NAME]` table of an extension as a `T`, naming the key
/// (`messaging.orders.url`) in any error, with the file and without a value the environment
/// supplied.
pub(super) fn extension<T: serde::de::DeserializeOwned>(
    extensions: &super::Extensions,
    section: &str,
) -> Result<std::collections::BTreeMap<String, T>, ConfigError> {
    let mut parsed = std::collections::BTreeMap::new();
    let Some(tables) = extensions.sections.get(section) else {
        return Ok(parsed);
    };
    let scrub = |e: ConfigError| {
        e.in_file(extensions.file.as_deref())
            .without_values(&extensions.supplied)
    };
    for (name, value) in tables {
        let key = format!("{section}.{name}");
        let value = table(Some(value.clone()), &key).map_err(scrub)?;
        parsed.insert(
            name.clone(),
            self::section(value.into(), &key).map_err(scrub)?,
        );
    }
    Ok(parsed)
}

/// Deserializes `value` as a `T`, naming the key under `prefix` in any error.
fn section<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = match path.as_str() {
            "." => prefix.to_owned(),
            path => format!("{prefix}.{path}"),
        };
        ConfigError::invalid(key, without_location(&e.into_inner().to_string()))
    })
}

/// toml's own messages end with an `in \`key\`` line; the key is already in ours.
fn without_location(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .filter(|l| !l.trim_start().starts_with("in `"))
        .collect();
    lines.join(" ").trim().to_owned()
}

fn table(value: Option<toml::Value>, key: &str) -> Result<toml::Table, ConfigError> {
    match value {
        None => Ok(toml::Table::new()),
        Some(toml::Value::Table(table)) => Ok(table),
        Some(other) => Err(ConfigError::invalid(
            key,
            format!("expected a table, found a {}", other.type_str()),
        )),
    }
}

/// Merges `over` into `base`: a key in both takes `over`'s value, tables merging key by key.
/// Header names ignore case, so a service's `Authorization` replaces the defaults'
/// `authorization`.
fn merge(base: &mut toml::Table, over: toml::Table, case_insensitive: bool) {
    for (key, value) in over {
        if case_insensitive {
            base.retain(|k, _| !k.eq_ignore_ascii_case(&key));
        }
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => {
                merge(base, over, key == "headers");
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The sections other crates of the product read from the same file
/// ([`SdkConfig::extension`](super::SdkConfig::extension)): the messaging connections, the
/// gateway's routes and settings, and the server binaries' flags (`[server.registry]`,
/// `[server.events]`, `[server.gateway]`, read by `sdk_server::parse_args`).
const EXTENSIONS: [&str; 4] = ["messaging", "routes", "gateway", "server"];

fn build(value: toml::Value) -> Result<SdkConfig, ConfigError> {
    let mut root = table(Some(value), "")?;
    let mut sdk = table(root.remove("sdk"), "sdk")?;
    let mut defaults = table(root.remove("defaults"), "defaults")?;
    let services = table(root.remove("services"), "services")?;
    let mut config = SdkConfig::new();
    for name in EXTENSIONS {
        let extension = table(root.remove(name), name)?;
        if !extension.is_empty() {
            config
                .extensions
                .sections
                .insert(name.to_owned(), extension);
        }
    }
    reference_settings(&mut root, &mut defaults, &mut sdk)?;
    apply_sdk(&mut config, section(sdk.into(), "sdk")?)?;
    flat_keys(&mut defaults, "defaults")?;
    config.defaults = section(defaults.clone().into(), "defaults")?;
    for (name, service) in services {
        let key = format!("services.{name}");
        let mut service = table(Some(service), &key)?;
        flat_keys(&mut service, &key)?;
        let mut merged = defaults.clone();
        merge(&mut merged, service, false);
        let service = section(merged.into(), &key)?;
        config.services.insert(name, service);
    }
    Ok(config)
}

/// The reference SDK's flat keys, rewritten into the nested ones: `host`/`port`/`protocol`
/// make one instance; `retry_attempts`, `failure_threshold` and `circuit_breaker_enabled`
/// set the retry and breaker sections. Setting the same thing both ways is refused, naming
/// both keys.
fn flat_keys(section: &mut toml::Table, prefix: &str) -> Result<(), ConfigError> {
    let both = |flat: &str, nested: &str| {
        ConfigError::invalid(
            format!("{prefix}.{flat}"),
            format!("`{prefix}.{nested}` sets the same thing; keep one"),
        )
    };
    let (host, port, protocol) = (
        section.remove("host"),
        section.remove("port"),
        section.remove("protocol"),
    );
    if host.is_some() || port.is_some() || protocol.is_some() {
        if section.contains_key("instances") {
            return Err(both("host", "instances"));
        }
        let url = flat_instance(host, port, protocol)
            .map_err(|(key, message)| ConfigError::invalid(format!("{prefix}.{key}"), message))?;
        section.insert("instances".into(), toml::Value::Array(vec![url.into()]));
    }
    for (flat, table, key) in [
        ("retry_attempts", "retry", "max_attempts"),
        ("failure_threshold", "circuit_breaker", "failure_threshold"),
        ("circuit_breaker_enabled", "circuit_breaker", "enabled"),
    ] {
        if let Some(value) = section.remove(flat) {
            relocate(
                value,
                section,
                prefix,
                Some(table),
                key,
                &format!("{prefix}.{flat}"),
            )?;
        }
    }
    Ok(())
}

/// Puts a flat key's `value` at `key` of `target` (in its sub-table `table`, made when
/// missing). The one rule for both flat forms: a setting written both ways is refused,
/// the error on `flat` naming the other place (`{name}.{table}.{key}`).
fn relocate(
    value: toml::Value,
    target: &mut toml::Table,
    name: &str,
    table: Option<&str>,
    key: &str,
    flat: &str,
) -> Result<(), ConfigError> {
    let target = match table {
        None => target,
        Some(table) => match target
            .entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(nested) => nested,
            _ => {
                return Err(ConfigError::invalid(
                    format!("{name}.{table}"),
                    "expected a table",
                ))
            }
        },
    };
    if target.contains_key(key) {
        let nested = table.map_or(key.to_owned(), |t| format!("{t}.{key}"));
        return Err(ConfigError::invalid(
            flat,
            format!("`{name}.{nested}` sets the same thing; keep one"),
        ));
    }
    target.insert(key.into(), value);
    Ok(())
}

/// The reference SDK's top-level settings, moved where they belong here:
/// `default_timeout`, `default_retry_attempts`, `default_circuit_breaker_enabled`,
/// `health_check_interval` and `cache_enabled` into `[defaults]`;
/// `service_discovery_enabled` and `metrics_enabled` into `[sdk]`. Each is refused when the
/// place it moves to already sets it.
fn reference_settings(
    root: &mut toml::Table,
    defaults: &mut toml::Table,
    sdk: &mut toml::Table,
) -> Result<(), ConfigError> {
    const MOVES: [(&str, &str, Option<&str>, &str); 7] = [
        ("default_timeout", "defaults", None, "timeout"),
        (
            "default_retry_attempts",
            "defaults",
            Some("retry"),
            "max_attempts",
        ),
        (
            "default_circuit_breaker_enabled",
            "defaults",
            Some("circuit_breaker"),
            "enabled",
        ),
        (
            "health_check_interval",
            "defaults",
            Some("health_check"),
            "interval",
        ),
        ("cache_enabled", "defaults", Some("cache"), "enabled"),
        (
            "service_discovery_enabled",
            "sdk",
            None,
            "service_discovery",
        ),
        ("metrics_enabled", "sdk", None, "metrics"),
    ];
    for (flat, section, table, key) in MOVES {
        if let Some(value) = root.remove(flat) {
            let target = if section == "sdk" {
                &mut *sdk
            } else {
                &mut *defaults
            };
            relocate(value, target, section, table, key, flat)?;
        }
    }
    if let Some(key) = root.keys().next() {
        return Err(ConfigError::invalid(
            key.as_str(),
            "unknown section; expected `sdk`, `defaults`, `services`, `messaging`, `routes`, `gateway` or `server`",
        ));
    }
    Ok(())
}

/// `protocol://host:port` from the flat keys (`protocol` defaults to `http`, `port` to the
/// protocol's).
fn flat_instance(
    host: Option<toml::Value>,
    port: Option<toml::Value>,
    protocol: Option<toml::Value>,
) -> Result<String, (&'static str, String)> {
    // toml's serializer is not built (only its parser): scalars are written out here.
    let text = |value: toml::Value| match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => String::new(),
    };
    let protocol = protocol.map(text).unwrap_or_else(|| "http".into());
    if protocol != "http" && protocol != "https" {
        return Err(("protocol", format!("`{protocol}` is not http or https")));
    }
    let host = host
        .map(text)
        .ok_or(("host", "port and protocol need a host".to_owned()))?;
    let port = match port.map(text) {
        Some(port) => port
            .trim()
            .parse::<u16>()
            .map_err(|_| ("port", format!("`{port}` is not a port")))?,
        None if protocol == "https" => 443,
        None => 80,
    };
    Ok(format!("{protocol}://{host}:{port}"))
}

fn apply_sdk(config: &mut SdkConfig, sdk: SdkSection) -> Result<(), ConfigError> {
    let transport = &mut config.transport;
    transport.max_response_bytes = sdk.max_response_bytes;
    transport.connect_timeout = sdk.connect_timeout;
    transport.pool_idle_timeout = sdk.pool_idle_timeout;
    transport.pool_max_idle_per_host = sdk.pool_max_idle_per_host;
    transport.http2_prior_knowledge = sdk.http2_prior_knowledge;
    if let Some(agent) = sdk.user_agent {
        transport.user_agent = http::HeaderValue::try_from(agent).map_err(|_| {
            ConfigError::invalid("sdk.user_agent", "has characters not allowed in a header")
        })?;
    }
    config.error_body_limit = sdk.error_body_limit;
    config.sensitive_headers = sdk.sensitive_headers;
    config.service_discovery = sdk.service_discovery;
    config.metrics = sdk.metrics;
    if let Some(url) = sdk.registry_url {
        sdk_registry::HttpBackend::new(&url, None)
            .map_err(|e| ConfigError::invalid("sdk.registry_url", e.to_string()))?;
        config.registry_url = Some(url);
    }
    config.registry_token = sdk.registry_token.filter(|t| !t.is_empty());
    let Some(endpoints) = sdk.etcd_endpoints else {
        if sdk.etcd_prefix.is_some()
            || sdk.etcd_lease_ttl.is_some()
            || sdk.etcd_user.is_some()
            || sdk.etcd_password.is_some()
        {
            return Err(ConfigError::invalid(
                "sdk.etcd_prefix",
                "etcd settings need etcd_endpoints",
            ));
        }
        return Ok(());
    };
    if config.registry_url.is_some() {
        return Err(ConfigError::invalid(
            "sdk.etcd_endpoints",
            "set either registry_url or etcd_endpoints, not both",
        ));
    }
    let mut etcd = EtcdConfig::new(endpoints);
    if let Some(prefix) = sdk.etcd_prefix {
        etcd.prefix = prefix;
    }
    if let Some(ttl) = sdk.etcd_lease_ttl {
        if ttl < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "sdk.etcd_lease_ttl",
                "must be at least 1s (etcd leases count whole seconds)",
            ));
        }
        etcd.lease_ttl = ttl;
    }
    if sdk.etcd_password.is_some() && sdk.etcd_user.is_none() {
        return Err(ConfigError::invalid(
            "sdk.etcd_password",
            "a password needs etcd_user",
        ));
    }
    etcd.user = sdk.etcd_user.filter(|u| !u.is_empty());
    etcd.password = sdk.etcd_password;
    etcd.registry(None)?;
    config.etcd = Some(etcd);
    Ok(())
}

fn substitute_tree(
    value: &mut toml::Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            *s = substitute(s, lookup)
                .map_err(|e| ConfigError::invalid(path.join("."), e.to_string()))?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_tree(item, path, lookup)?;
                path.pop();
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                path.push(key.clone());
                substitute_tree(item, path, lookup)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "ORDERS_HOST" => Some("127.0.0.1:9000".into()),
            "ATTEMPTS" => Some("5".into()),
            _ => None,
        }
    }

    fn parse_str(text: &str) -> Result<SdkConfig, ConfigError> {
        parse(text, Some(Path::new("services.toml")), &env)
    }

    #[test]
    fn full_file_with_substitution_and_defaults() {
        let config = parse_str(
            r#"
            [sdk]
            max_response_bytes = "1MiB"

            [defaults]
            timeout = "10s"
            [defaults.retry]
            max_attempts = 2

            [services.orders]
            instances = ["http://${ORDERS_HOST}", "http://${BACKUP:127.0.0.1:9001}/api"]
            attempt_timeout = "500ms"
            headers = { authorization = "Bearer ${TOKEN:dev}" }
            [services.orders.retry]
            max_attempts = "${ATTEMPTS}"
            initial_backoff = "50ms"
            jitter = "none"
            [services.orders.circuit_breaker]
            failure_threshold = 3
            open_duration = "30s"
            failure_rate_threshold = 0.5
            [services.orders.cache]
            enabled = true
            ttl = "5m"
            stale_if_error = "1h"

            [services.users]
            "#,
        )
        .expect("valid config");
        assert_eq!(config.transport.max_response_bytes, 1 << 20);
        let orders = config.service("orders");
        assert_eq!(
            orders.instances,
            ["http://127.0.0.1:9000", "http://127.0.0.1:9001/api"]
        );
        assert_eq!(
            orders.timeout,
            Duration::from_secs(10),
            "inherited from [defaults]"
        );
        assert_eq!(orders.retry.max_attempts, 5);
        assert_eq!(orders.circuit_breaker.failure_threshold, 3);
        assert!(orders.circuit_breaker.failure_rate.is_some());
        assert!(orders.cache.enabled);
        assert_eq!(orders.cache.stale_if_error, Some(Duration::from_secs(3600)));
        assert!(
            !format!("{orders:?}").contains("Bearer"),
            "secret header printed"
        );
        assert_eq!(config.service("users").retry.max_attempts, 2);
        assert_eq!(config.service("unknown").retry.max_attempts, 2);
    }

    fn error_of(text: &str) -> String {
        parse_str(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn registry_server_settings() {
        let config = parse_str(
            "[sdk]\nregistry_url = \"http://${ORDERS_HOST}\"\nregistry_token = \"tok-123\"",
        )
        .expect("valid");
        assert_eq!(
            config.registry_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(
            !format!("{config:?}").contains("tok-123"),
            "the token never prints"
        );
        let e = error_of("[sdk]\nregistry_url = \"ftp://x\"");
        assert!(e.contains("sdk.registry_url"), "{e}");
    }

    /// Without the `etcd` feature a file naming an etcd cluster is refused, saying how to
    /// get etcd, instead of running on the embedded registry.
    #[cfg(not(feature = "etcd"))]
    #[test]
    fn etcd_settings_need_the_feature() {
        let error = parse_str("[sdk]\netcd_endpoints = [\"http://127.0.0.1:2379\"]")
            .expect_err("no etcd in this build");
        assert!(error.to_string().contains("`etcd` feature"), "{error}");
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn etcd_settings() {
        let config = parse_str(
            "[sdk]\netcd_endpoints = [\"http://${ORDERS_HOST}\", \"http://10.0.0.2:2379\"]\netcd_prefix = \"/shop/\"\netcd_lease_ttl = \"20s\"",
        )
        .expect("valid");
        let etcd = config.etcd.expect("etcd configured");
        assert_eq!(
            etcd.endpoints,
            ["http://127.0.0.1:9000", "http://10.0.0.2:2379"]
        );
        assert_eq!(etcd.prefix, "/shop/");
        assert_eq!(etcd.user, None);
        let with_auth = parse_str(
            "[sdk]\netcd_endpoints = [\"http://127.0.0.1:2379\"]\netcd_user = \"shop\"\netcd_password = \"pa55-word\"",
        )
        .expect("valid");
        let etcd_auth = with_auth.etcd.clone().expect("etcd configured");
        assert_eq!(etcd_auth.user.as_deref(), Some("shop"));
        assert!(
            !format!("{with_auth:?}").contains("pa55-word"),
            "the password never prints"
        );
        let e = error_of("[sdk]\netcd_endpoints = [\"http://x:2379\"]\netcd_password = \"p\"");
        assert!(e.contains("sdk.etcd_password"), "{e}");
        assert_eq!(etcd.lease_ttl, Duration::from_secs(20));
        let defaults = parse_str("[sdk]\netcd_endpoints = [\"http://127.0.0.1:2379\"]")
            .expect("valid")
            .etcd
            .expect("etcd configured");
        assert_eq!(defaults.prefix, "/sdk-registry/services/");
        assert_eq!(defaults.lease_ttl, Duration::from_secs(90));

        let e = error_of("[sdk]\netcd_endpoints = []");
        assert!(
            e.contains("sdk.etcd_endpoints") && e.contains("at least one"),
            "{e}"
        );
        assert!(parse_str("[sdk]\netcd_endpoints = [\"https://etcd.internal:2379\"]").is_ok());
        let e = error_of("[sdk]\netcd_endpoints = [\"ftp://x:2379\"]");
        assert!(e.contains("sdk.etcd_endpoints"), "{e}");
        let e = error_of(
            "[sdk]\netcd_endpoints = [\"http://x:2379\"]\nregistry_url = \"http://y:8500\"",
        );
        assert!(e.contains("not both"), "{e}");
        let e = error_of("[sdk]\netcd_lease_ttl = \"10s\"");
        assert!(e.contains("need etcd_endpoints"), "{e}");
        let e = error_of("[sdk]\netcd_endpoints = [\"http://x:2379\"]\netcd_lease_ttl = \"10ms\"");
        assert!(e.contains("sdk.etcd_lease_ttl"), "{e}");
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = error_of("[services.orders.retry]\nmax_attempts = \"lots\"");
        assert!(
            e.starts_with("services.toml: services.orders.retry.max_attempts:"),
            "{e}"
        );
        assert!(e.contains("lots"), "{e}");

        let e = error_of("[services.orders]\ntimeout = \"soon\"");
        assert!(
            e.contains("services.orders.timeout") && e.contains("not a duration"),
            "{e}"
        );

        let e = error_of("[services.orders]\ntimout = \"1s\"");
        assert!(e.contains("unknown field `timout`"), "{e}");

        let e = error_of("[services.orders]\ninstances = [\"http://${NOPE}\"]");
        assert!(
            e.contains("services.orders.instances.0") && e.contains("NOPE"),
            "{e}"
        );

        let e = error_of("[services.orders]\ntimeout = \"1s\"\nattempt_timeout = \"2s\"");
        assert!(
            e.contains("services.orders.attempt_timeout") && e.contains("longer than"),
            "{e}"
        );

        let e = error_of("[services.orders.retry]\nmax_attempts = 0");
        assert!(
            e.contains("services.orders.retry.max_attempts") && e.contains("at least 1"),
            "{e}"
        );

        let e = error_of("[services.orders.cache]\nttl = \"0s\"");
        assert!(e.contains("services.orders.cache.ttl"), "{e}");

        let e = error_of("[services.orders]\ninstances = [\"ftp://x\"]");
        assert!(
            e.contains("services.orders.instances") && e.contains("scheme"),
            "{e}"
        );

        let e = error_of("[services.orders\n");
        assert!(
            e.starts_with("services.toml: ") && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn defaults_merge_key_by_key_into_each_service() {
        let config = parse_str(
            r#"
            [defaults]
            headers = { Authorization = "Bearer default-token", x-team = "shop" }
            [defaults.retry]
            initial_backoff = "50ms"
            jitter = "none"
            [defaults.circuit_breaker]
            failure_rate_threshold = 0.5

            [services.orders]
            headers = { authorization = "Bearer orders-token" }
            [services.orders.retry]
            max_backoff = "2s"
            multiplier = 3
            [services.orders.circuit_breaker]
            failure_rate_window = 50
            "#,
        )
        .expect("valid config");
        let orders = config.service("orders");
        // The backoff keeps the defaults' first step and jitter under the service's own cap.
        assert_eq!(orders.retry.backoff.delay(1), Duration::from_millis(50));
        assert_eq!(orders.retry.backoff.delay(2), Duration::from_millis(150));
        assert_eq!(orders.retry.backoff.delay(9), Duration::from_secs(2));
        let rate = orders
            .circuit_breaker
            .failure_rate
            .expect("from [defaults]");
        assert_eq!((rate.threshold, rate.window, rate.min_calls), (0.5, 50, 10));
        // `Authorization` and `authorization` are one header: the service's wins.
        let auth: Vec<_> = orders
            .headers
            .iter()
            .filter(|(n, _)| n == http::header::AUTHORIZATION)
            .collect();
        assert_eq!(auth.len(), 1);
        assert_eq!(auth[0].1, "Bearer orders-token");
        assert!(auth[0].1.is_sensitive());
        assert!(orders
            .headers
            .iter()
            .any(|(n, v)| n == "x-team" && v == "shop"));
        let defaults = &config.defaults;
        assert_eq!(defaults.retry.backoff.delay(2), Duration::from_millis(100));
    }

    #[test]
    fn section_mistakes_are_named() {
        let e = error_of("[service.orders]\ntimeout = \"1s\"");
        assert!(
            e.contains("service") && e.contains("unknown section"),
            "{e}"
        );

        let e = error_of("services = 3");
        assert!(
            e.contains("services") && e.contains("expected a table"),
            "{e}"
        );

        let e = error_of("[services.orders.circuit_breaker]\nfailure_rate_window = 10");
        assert!(
            e.contains("services.orders.circuit_breaker") && e.contains("failure_rate_threshold"),
            "{e}"
        );

        let e = error_of("[services.orders.retry]\nmultiplier = 0.5");
        assert!(
            e.contains("services.orders.retry.multiplier") && e.contains("between 1.0 and 100.0"),
            "{e}"
        );

        // A bad value inherited from [defaults] is reported at [defaults].
        let e = error_of("[defaults.retry]\njitter = \"some\"\n[services.orders]");
        assert!(
            e.contains("defaults.retry.jitter") && e.contains("`full`"),
            "{e}"
        );

        let e = error_of(
            "[defaults.retry]\ninitial_backoff = \"500ms\"\n[services.orders.retry]\nmax_backoff = \"200ms\"",
        );
        assert!(
            e.contains("services.orders.retry.initial_backoff") && e.contains("longer than"),
            "{e}"
        );

        let e = error_of("[services.orders.load_balancer]\nstrategy = \"random\"");
        assert!(
            e.contains("services.orders.load_balancer.strategy") && e.contains("round_robin"),
            "{e}"
        );

        let e = error_of("[services.orders]\nheaders = { \"bad header\" = \"x\" }");
        assert!(e.contains("services.orders.headers"), "{e}");

        let e = error_of("[sdk]\nmax_response_bytes = \"10 parsecs\"");
        assert!(e.contains("sdk.max_response_bytes"), "{e}");
    }

    #[test]
    fn the_reference_sdks_flat_form_loads_as_written() {
        let config = parse_str(
            r#"
[services.user_service]
host = "${USER_SERVICE_HOST:localhost}"
port = "${USER_SERVICE_PORT:8001}"
timeout = "${USER_SERVICE_TIMEOUT:30.0}"
circuit_breaker_enabled = true
retry_attempts = 3

[services.payment_service]
host = "${PAYMENT_SERVICE_HOST:payments.example.com}"
port = 443
protocol = "https"
timeout = 60.0
circuit_breaker_enabled = true
failure_threshold = 3
"#,
        )
        .expect("the reference's file loads");
        let users = config.service("user_service");
        assert_eq!(users.instances, ["http://localhost:8001"]);
        assert_eq!(users.timeout, Duration::from_secs(30));
        assert_eq!(users.retry.max_attempts, 3);
        assert!(users.circuit_breaker.enabled);
        let payments = config.service("payment_service");
        assert_eq!(payments.instances, ["https://payments.example.com:443"]);
        assert_eq!(payments.timeout, Duration::from_secs(60));
        assert_eq!(payments.circuit_breaker.failure_threshold, 3);

        let off = parse_str("[services.s]\nhost = \"h\"\ncircuit_breaker_enabled = false")
            .expect("valid");
        assert!(!off.service("s").circuit_breaker.enabled);
        assert_eq!(off.service("s").instances, ["http://h:80"]);
    }

    #[test]
    fn one_setting_written_both_ways_is_refused_naming_both() {
        let e = error_of("[services.s]\nretry_attempts = 2\n[services.s.retry]\nmax_attempts = 3");
        assert!(
            e.contains("services.s.retry_attempts") && e.contains("services.s.retry.max_attempts"),
            "{e}"
        );
        let e = error_of("[services.s]\nhost = \"h\"\ninstances = [\"http://h:1\"]");
        assert!(
            e.contains("services.s.host") && e.contains("services.s.instances"),
            "{e}"
        );
        let e = error_of("[services.s]\nport = 8080");
        assert!(
            e.contains("services.s.host") && e.contains("need a host"),
            "{e}"
        );
        let e = error_of("[services.s]\nhost = \"h\"\nprotocol = \"ftp\"");
        assert!(e.contains("services.s.protocol"), "{e}");
        let e = error_of("[services.s]\nhost = \"h\"\nport = \"eighty\"");
        assert!(e.contains("services.s.port"), "{e}");
    }

    #[test]
    fn the_reference_sdks_global_settings_load() {
        let config = parse_str(
            "default_timeout = 30.0\ndefault_retry_attempts = 3\ndefault_circuit_breaker_enabled = true\n\
             service_discovery_enabled = true\nhealth_check_interval = 30.0\ncache_enabled = true\n\
             metrics_enabled = true\n[services.s]\nhost = \"h\"",
        )
        .expect("the reference's settings load");
        let s = config.service("s");
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.retry.max_attempts, 3);
        assert!(s.circuit_breaker.enabled && s.cache.enabled);
        assert_eq!(s.health_check.interval, Duration::from_secs(30));
        assert!(config.service_discovery && config.metrics);

        let off =
            parse_str("service_discovery_enabled = false\nmetrics_enabled = false").expect("valid");
        assert!(!off.service_discovery && !off.metrics);
        let e = error_of("default_timeout = 5\n[defaults]\ntimeout = \"5s\"");
        assert!(
            e.contains("default_timeout") && e.contains("defaults.timeout"),
            "{e}"
        );
        let e = error_of("default_retries = 5");
        assert!(
            e.contains("default_retries") && e.contains("unknown"),
            "{e}"
        );
    }

    #[test]
    fn versions_and_error_caching_load_and_their_mistakes_are_named() {
        let config = parse_str(
            r#"
            [defaults]
            version = "^2"

            [services.users.version]
            "^1" = 90
            "^2" = "${V2_SHARE:10}"

            [services.products.cache]
            enabled = true
            cache_on_error = "30s"
            error_statuses = [404, 410, 400]
            "#,
        )
        .expect("valid");
        let version = |name| {
            config
                .service(name)
                .version
                .as_ref()
                .map(ToString::to_string)
        };
        assert_eq!(version("users").as_deref(), Some("^1 (90), ^2 (10)"));
        assert_eq!(
            version("products").as_deref(),
            Some("^2"),
            "from [defaults]"
        );
        let cache = &config.service("products").cache;
        assert_eq!(cache.cache_on_error, Some(Duration::from_secs(30)));
        assert_eq!(cache.error_statuses.len(), 3);
        assert_eq!(config.defaults.cache.cache_on_error, None, "off by default");

        let e = error_of("[services.users]\nversion = \"two\"");
        assert!(
            e.contains("services.users.version") && e.contains("not a version requirement"),
            "{e}"
        );
        let e = error_of("[services.users]\nversion = 2");
        assert!(
            e.contains("services.users.version") && e.contains("split"),
            "{e}"
        );
        let e = error_of(
            "[services.users.version]
\"^1\" = 0",
        );
        assert!(e.contains("weight above zero"), "{e}");
        let e = error_of("[services.users.cache]\nerror_statuses = [503]");
        assert!(
            e.contains("services.users.cache.error_statuses") && e.contains("503"),
            "{e}"
        );
    }
}
