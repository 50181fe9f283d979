//! The TOML file format: raw sections with every field optional, merged over the defaults.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use super::{
    env::substitute,
    units::{DurationStr, Lenient, SizeStr},
    ConfigError, EtcdConfig, SdkConfig, ServiceConfig,
};
use crate::{
    balance::Strategy,
    circuit_breaker::FailureRate,
    retry::{ExponentialBackoff, Jitter},
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    sdk: RawSdk,
    #[serde(default)]
    defaults: RawService,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSdk {
    max_response_bytes: Option<SizeStr>,
    error_body_limit: Option<SizeStr>,
    connect_timeout: Option<DurationStr>,
    pool_idle_timeout: Option<DurationStr>,
    pool_max_idle_per_host: Option<Lenient<usize>>,
    http2_prior_knowledge: Option<Lenient<bool>>,
    registry_url: Option<String>,
    registry_token: Option<String>,
    etcd_endpoints: Option<Vec<String>>,
    etcd_prefix: Option<String>,
    etcd_lease_ttl: Option<DurationStr>,
    etcd_user: Option<String>,
    etcd_password: Option<String>,
    sensitive_headers: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawService {
    instances: Option<Vec<String>>,
    timeout: Option<DurationStr>,
    attempt_timeout: Option<DurationStr>,
    headers: Option<BTreeMap<String, String>>,
    retry: Option<RawRetry>,
    circuit_breaker: Option<RawBreaker>,
    cache: Option<RawCache>,
    load_balancer: Option<RawLoadBalancer>,
    health_check: Option<RawHealthCheck>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    enabled: Option<Lenient<bool>>,
    path: Option<String>,
    interval: Option<DurationStr>,
    timeout: Option<DurationStr>,
    unhealthy_threshold: Option<Lenient<u32>>,
    healthy_threshold: Option<Lenient<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLoadBalancer {
    strategy: Option<String>,
    default_rtt: Option<DurationStr>,
    failure_penalty: Option<DurationStr>,
    decay: Option<DurationStr>,
    ejection_failures: Option<Lenient<u32>>,
    ejection_duration: Option<DurationStr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<Lenient<u32>>,
    initial_backoff: Option<DurationStr>,
    max_backoff: Option<DurationStr>,
    multiplier: Option<Lenient<f64>>,
    jitter: Option<String>,
    retry_non_idempotent: Option<Lenient<bool>>,
    retry_statuses: Option<Vec<Lenient<u16>>>,
    max_retry_after: Option<DurationStr>,
    budget_ratio: Option<Lenient<f32>>,
    budget_min_per_second: Option<Lenient<u32>>,
    budget_window: Option<DurationStr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failure_threshold: Option<Lenient<u32>>,
    success_threshold: Option<Lenient<u32>>,
    open_duration: Option<DurationStr>,
    half_open_max_probes: Option<Lenient<u32>>,
    failure_rate_threshold: Option<Lenient<f64>>,
    failure_rate_window: Option<Lenient<u32>>,
    failure_rate_min_calls: Option<Lenient<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    enabled: Option<Lenient<bool>>,
    ttl: Option<DurationStr>,
    max_bytes: Option<SizeStr>,
    stale_if_error: Option<DurationStr>,
    vary_headers: Option<Vec<String>>,
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
    let scrub = |e: ConfigError| e.in_file(file).without_values(&supplied.borrow());
    let raw: RawFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        scrub(ConfigError::invalid(
            if key == "." { String::new() } else { key },
            without_location(&e.into_inner().to_string()),
        ))
    })?;
    build(raw)
        .and_then(|config| config.validate().map(|()| config))
        .map_err(scrub)
}

/// toml's own messages end with an `in \`key\`` line; the key is already in ours.
fn without_location(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .filter(|l| !l.trim_start().starts_with("in `"))
        .collect();
    lines.join(" ").trim().to_owned()
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

fn build(raw: RawFile) -> Result<SdkConfig, ConfigError> {
    let mut config = SdkConfig::new();
    let sdk = raw.sdk;
    let transport = &mut config.transport;
    if let Some(SizeStr(v)) = sdk.max_response_bytes {
        transport.max_response_bytes = usize::try_from(v).map_err(|_| {
            ConfigError::invalid("sdk.max_response_bytes", "too large for this machine")
        })?;
    }
    for name in sdk.sensitive_headers.iter().flatten() {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
            ConfigError::invalid(
                "sdk.sensitive_headers",
                format!("`{name}` is not a header name"),
            )
        })?;
        config.sensitive_headers.push(name);
    }
    if let Some(SizeStr(v)) = sdk.error_body_limit {
        config.error_body_limit = usize::try_from(v).map_err(|_| {
            ConfigError::invalid("sdk.error_body_limit", "too large for this machine")
        })?;
    }
    if let Some(DurationStr(v)) = sdk.connect_timeout {
        transport.connect_timeout = v;
    }
    if let Some(DurationStr(v)) = sdk.pool_idle_timeout {
        transport.pool_idle_timeout = v;
    }
    if let Some(Lenient(v)) = sdk.pool_max_idle_per_host {
        transport.pool_max_idle_per_host = v;
    }
    if let Some(Lenient(v)) = sdk.http2_prior_knowledge {
        transport.http2_prior_knowledge = v;
    }
    if let Some(url) = sdk.registry_url {
        sdk_registry::HttpBackend::new(&url, None)
            .map_err(|e| ConfigError::invalid("sdk.registry_url", e.to_string()))?;
        config.registry_url = Some(url);
    }
    config.registry_token = sdk.registry_token.filter(|t| !t.is_empty());
    if let Some(endpoints) = sdk.etcd_endpoints {
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
        if let Some(DurationStr(ttl)) = sdk.etcd_lease_ttl {
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
        etcd.backend()
            .map_err(|e| ConfigError::invalid("sdk.etcd_endpoints", e.to_string()))?;
        config.etcd = Some(etcd);
    } else if sdk.etcd_prefix.is_some()
        || sdk.etcd_lease_ttl.is_some()
        || sdk.etcd_user.is_some()
        || sdk.etcd_password.is_some()
    {
        return Err(ConfigError::invalid(
            "sdk.etcd_prefix",
            "etcd settings need etcd_endpoints",
        ));
    }

    apply(&mut config.defaults, raw.defaults, "defaults")?;
    for (name, section) in raw.services {
        let mut service = config.defaults.clone();
        apply(&mut service, section, &format!("services.{name}"))?;
        config.services.insert(name, service);
    }
    Ok(config)
}

fn apply(service: &mut ServiceConfig, raw: RawService, prefix: &str) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    if let Some(instances) = raw.instances {
        service.instances = instances;
    }
    if let Some(DurationStr(v)) = raw.timeout {
        service.timeout = v;
    }
    if let Some(DurationStr(v)) = raw.attempt_timeout {
        service.attempt_timeout = Some(v);
    }
    for (name, value) in raw.headers.unwrap_or_default() {
        let header_key = key(&format!("headers.{name}"));
        let name = HeaderName::try_from(name.as_str()).map_err(|_| {
            ConfigError::invalid(&header_key, format!("`{name}` is not a valid header name"))
        })?;
        let value = HeaderValue::try_from(value).map_err(|_| {
            ConfigError::invalid(&header_key, "value has characters not allowed in a header")
        })?;
        service.headers.retain(|(n, _)| n != name);
        *service = std::mem::take(service).header(name, value);
    }
    if let Some(r) = raw.retry {
        let retry = &mut service.retry;
        if let Some(Lenient(v)) = r.max_attempts {
            retry.max_attempts = v;
        }
        let mut backoff = ExponentialBackoff::default();
        let mut backoff_changed = false;
        if let Some(DurationStr(v)) = r.initial_backoff {
            backoff.initial = v;
            backoff_changed = true;
        }
        if let Some(DurationStr(v)) = r.max_backoff {
            backoff.max = v;
            backoff_changed = true;
        }
        if let Some(Lenient(v)) = r.multiplier {
            if !(1.0..=100.0).contains(&v) {
                return Err(ConfigError::invalid(
                    key("retry.multiplier"),
                    format!("{v} must be between 1.0 and 100.0"),
                ));
            }
            backoff.multiplier = v;
            backoff_changed = true;
        }
        if let Some(jitter) = r.jitter {
            backoff.jitter = match jitter.as_str() {
                "full" => Jitter::Full,
                "none" => Jitter::None,
                other => {
                    return Err(ConfigError::invalid(
                        key("retry.jitter"),
                        format!("`{other}` is not a jitter mode; use \"full\" or \"none\""),
                    ))
                }
            };
            backoff_changed = true;
        }
        if backoff.initial > backoff.max {
            return Err(ConfigError::invalid(
                key("retry.initial_backoff"),
                format!(
                    "{:?} is longer than max_backoff {:?}",
                    backoff.initial, backoff.max
                ),
            ));
        }
        if backoff_changed {
            retry.backoff = Arc::new(backoff);
        }
        if let Some(Lenient(v)) = r.retry_non_idempotent {
            retry.retry_non_idempotent = v;
        }
        if let Some(statuses) = r.retry_statuses {
            retry.retry_statuses = statuses
                .into_iter()
                .map(|Lenient(code)| {
                    StatusCode::from_u16(code).map_err(|_| {
                        ConfigError::invalid(
                            key("retry.retry_statuses"),
                            format!("{code} is not an HTTP status"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(DurationStr(v)) = r.max_retry_after {
            retry.max_retry_after = v;
        }
        if let Some(Lenient(v)) = r.budget_ratio {
            retry.budget.ratio = v;
        }
        if let Some(Lenient(v)) = r.budget_min_per_second {
            retry.budget.min_per_second = v;
        }
        if let Some(DurationStr(v)) = r.budget_window {
            retry.budget.window = v;
        }
    }
    if let Some(b) = raw.circuit_breaker {
        let breaker = &mut service.circuit_breaker;
        if let Some(Lenient(v)) = b.failure_threshold {
            breaker.failure_threshold = v;
        }
        if let Some(Lenient(v)) = b.success_threshold {
            breaker.success_threshold = v;
        }
        if let Some(DurationStr(v)) = b.open_duration {
            breaker.open_duration = v;
        }
        if let Some(Lenient(v)) = b.half_open_max_probes {
            breaker.half_open_max_probes = v;
        }
        if let Some(Lenient(threshold)) = b.failure_rate_threshold {
            let mut rate = breaker.failure_rate.unwrap_or(FailureRate {
                window: 20,
                threshold,
                min_calls: 10,
            });
            rate.threshold = threshold;
            breaker.failure_rate = Some(rate);
        }
        if let Some(rate) = breaker.failure_rate.as_mut() {
            if let Some(Lenient(v)) = b.failure_rate_window {
                rate.window = v;
            }
            if let Some(Lenient(v)) = b.failure_rate_min_calls {
                rate.min_calls = v;
            }
        } else if b.failure_rate_window.is_some() || b.failure_rate_min_calls.is_some() {
            return Err(ConfigError::invalid(
                key("circuit_breaker.failure_rate_threshold"),
                "set failure_rate_threshold to use a failure-rate window",
            ));
        }
    }
    if let Some(c) = raw.cache {
        let cache = &mut service.cache;
        if let Some(Lenient(v)) = c.enabled {
            cache.enabled = v;
        }
        if let Some(DurationStr(v)) = c.ttl {
            cache.ttl = v;
        }
        if let Some(SizeStr(v)) = c.max_bytes {
            cache.max_bytes = v;
        }
        if let Some(DurationStr(v)) = c.stale_if_error {
            cache.stale_if_error = (!v.is_zero()).then_some(v);
        }
        if let Some(names) = c.vary_headers {
            cache.vary_headers = names
                .iter()
                .map(|n| {
                    HeaderName::try_from(n.as_str()).map_err(|_| {
                        ConfigError::invalid(
                            key("cache.vary_headers"),
                            format!("`{n}` is not a header name"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
    }
    if let Some(lb) = raw.load_balancer {
        let config = &mut service.load_balancer;
        if let Some(strategy) = lb.strategy {
            config.strategy = match strategy.as_str() {
                "p2c" | "peak_ewma" => Strategy::PowerOfTwoChoices,
                "round_robin" => Strategy::RoundRobin,
                other => {
                    return Err(ConfigError::invalid(
                        key("load_balancer.strategy"),
                        format!("`{other}` is not a strategy; use \"p2c\" or \"round_robin\""),
                    ))
                }
            };
        }
        if let Some(DurationStr(v)) = lb.default_rtt {
            config.default_rtt = v;
        }
        if let Some(DurationStr(v)) = lb.failure_penalty {
            config.failure_penalty = v;
        }
        if let Some(DurationStr(v)) = lb.decay {
            config.decay = v;
        }
        if let Some(Lenient(v)) = lb.ejection_failures {
            config.ejection_failures = v;
        }
        if let Some(DurationStr(v)) = lb.ejection_duration {
            config.ejection_duration = v;
        }
    }
    if let Some(hc) = raw.health_check {
        let config = &mut service.health_check;
        if let Some(Lenient(v)) = hc.enabled {
            config.enabled = v;
        }
        if let Some(v) = hc.path {
            config.path = v;
        }
        if let Some(DurationStr(v)) = hc.interval {
            config.interval = v;
        }
        if let Some(DurationStr(v)) = hc.timeout {
            config.timeout = v;
        }
        if let Some(Lenient(v)) = hc.unhealthy_threshold {
            config.unhealthy_threshold = v;
        }
        if let Some(Lenient(v)) = hc.healthy_threshold {
            config.healthy_threshold = v;
        }
    }
    if service.timeout == Duration::ZERO {
        return Err(ConfigError::invalid(
            key("timeout"),
            "must be greater than zero",
        ));
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
}
