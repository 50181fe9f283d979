//! The API's request bodies and query strings, and the checks on their values.

use axum::http::StatusCode;
use sdk_server::ApiError;
use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/applications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewApplication {
    pub(super) application: String,
    pub(super) address: String,
    /// Its signing secret (`whsec_...` or any 8-128 bytes); generated when absent.
    #[serde(default)]
    pub(super) secret: Option<String>,
}

/// `POST /v1/actions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAction {
    pub(super) action: String,
    pub(super) application: String,
    pub(super) schemata: Value,
}

/// `POST /v1/subscriptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSubscription {
    pub(super) application: String,
    pub(super) subscription: String,
    pub(super) action: String,
    pub(super) handler: String,
    /// Its own signing secret (default: its application's).
    #[serde(default)]
    pub(super) secret: Option<String>,
}

/// `POST /v1/subscriptions/{name}/secret`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotate {
    /// The new secret (generated when absent).
    #[serde(default)]
    pub(super) secret: Option<String>,
    /// How long the old secret keeps signing alongside (default a day, at most a week).
    #[serde(default)]
    pub(super) keep_previous_secs: Option<u64>,
}

/// `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Publish {
    pub(super) action: String,
    pub(super) payload: Value,
    #[serde(default)]
    pub(super) idempotency_key: Option<String>,
}

/// `POST /v1/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Replay {
    pub(super) subscription: String,
    pub(super) from: Value,
    pub(super) to: Value,
}

/// `POST /v1/redrive`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Redrive {
    pub(super) subscription: String,
}

/// `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    pub(super) action: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    /// The `next_after` of the page before: `<created ms>.<seq>`.
    pub(super) after: Option<String>,
    pub(super) limit: Option<i64>,
}

/// An events page's cursor, `<created ms>.<seq>` as `next_after` writes it.
pub(super) fn event_cursor(text: &str) -> Result<(i64, i64), ApiError> {
    text.split_once('.')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| bad("`after` is the `next_after` of the page before"))
}

/// `GET /v1/deliveries`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveryQuery {
    pub(super) status: Option<String>,
    pub(super) subscription: Option<String>,
    pub(super) after: Option<i64>,
    pub(super) limit: Option<i64>,
}

pub(super) fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Checks a name by the registry's one rule (letters, digits, `-`, `_`, `.`).
pub(super) fn name(field: &'static str, value: &str) -> Result<(), ApiError> {
    sdk_registry::validate_name(field, value).map_err(|e| bad(e.to_string()))
}

/// Checks that `value` is where the bus may send deliveries: an endpoint the SDK will
/// call (its one rule, [`Instance::parse`](sdk::discovery::Instance::parse): `http` or
/// `https`, a host, no credentials), at most 2048 bytes, without a fragment.
pub(super) fn url(field: &str, value: &str) -> Result<(), ApiError> {
    let refuse = |why: &str| bad(format!("`{field}` {why}"));
    if value.len() > 2048 {
        return Err(refuse("is longer than 2048 bytes"));
    }
    if value.contains('#') {
        return Err(refuse("must not have a fragment"));
    }
    let uri: http::Uri = value.parse().map_err(|_| refuse("is not a URL"))?;
    let origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or_default(),
        uri.authority().map_or("", |a| a.as_str())
    );
    sdk::discovery::Instance::parse(&origin)
        .map_err(|e| refuse(&format!("is not usable: {}", e.reason)))?;
    Ok(())
}

/// Refuses a handler whose host is an internal address the server may not call (an IP
/// literal in any spelling, `localhost`, `*.internal`); names are judged again, after DNS,
/// at each delivery.
pub(super) fn handler_address(
    field: &str,
    value: &str,
    policy: &sdk_base::https::AddressPolicy,
) -> Result<(), ApiError> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| bad(format!("`{field}` is not a URL")))?;
    policy
        .check_host(uri.host().unwrap_or_default())
        .map_err(|e| bad(format!("`{field}` {e}")))
}

/// A time as RFC 3339 (`2024-01-15T10:30:00Z`) or milliseconds since the epoch.
pub(super) fn time(field: &str, value: &Value) -> Result<i64, ApiError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| bad(format!("`{field}` is not a time in milliseconds"))),
        Value::String(text) => time_text(field, text),
        _ => Err(bad(format!(
            "`{field}` must be an RFC 3339 time or milliseconds since the epoch"
        ))),
    }
}

/// [`time`] from a query string's text.
pub(super) fn time_text(field: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        if ms >= 0 {
            return Ok(ms);
        }
    }
    humantime::parse_rfc3339_weak(text)
        .map(crate::clock::to_ms)
        .map_err(|_| {
            bad(format!(
                "`{field}` must be an RFC 3339 time or milliseconds since the epoch"
            ))
        })
}

/// A page size: 1 to 1000, default 100.
pub(super) fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(bad("`limit` must be between 1 and 1000")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_urls_are_http_with_a_host_and_no_credentials() {
        assert!(url("handler", "https://email.myapp.com/webhooks/user-created").is_ok());
        assert!(url("handler", "http://127.0.0.1:8080/hook?x=1").is_ok());
        for refused in [
            "ftp://x/y",
            "file:///etc/passwd",
            "/relative",
            "http://user:pw@host/",
            "javascript:alert(1)",
            "http://host/#frag",
        ] {
            assert!(url("handler", refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_milliseconds() {
        assert_eq!(time_text("from", "1970-01-01T00:00:01Z").ok(), Some(1000));
        assert_eq!(time("to", &Value::from(5)).ok(), Some(5));
        assert!(time_text("from", "yesterday").is_err());
        assert!(time("from", &Value::Bool(true)).is_err());
    }
}
