//! A small client of etcd's v3 JSON gateway (`POST /v3/kv/range`, `/v3/lease/grant`, ...).
//!
//! Why not the `etcd-client` crate: it is a gRPC client (tonic, prost and their tower 0.4),
//! which would roughly double the SDK's dependency tree. Every etcd v3 server also answers
//! the same API as JSON over HTTP/1.1 at `/v3/...` (the grpc-gateway), which the hyper-util
//! client the registry already uses speaks (over rustls for `https://` endpoints). Keys and values travel base64-encoded and
//! 64-bit numbers as strings; the types below do that translation.

use sdk_base::sync::Unpoisoned as _;
use std::{
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use crate::{
    backend::client::{base_url, http_client, HttpClient},
    RegistryError,
};

/// The largest gateway answer read (a range over 10,000 instances is a few MiB).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// The gRPC status code etcd uses for "not found" (leases, keys).
const NOT_FOUND: i64 = 5;

/// The gRPC status code etcd uses when a request's auth token is missing, invalid or
/// expired.
const UNAUTHENTICATED: i64 = 16;

/// Talks to one of a cluster's endpoints, moving to the next when one cannot be reached.
pub(super) struct Gateway {
    endpoints: Vec<String>,
    current: AtomicUsize,
    client: HttpClient,
    timeout: Duration,
    credentials: Option<Arc<Credentials>>,
    /// The auth token of the last authentication (etcd's tokens expire; see `call`).
    token: Mutex<Option<Arc<str>>>,
}

/// An etcd user and password (never printed).
struct Credentials {
    user: String,
    password: String,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("endpoints", &self.endpoints)
            .field("user", &self.credentials.as_ref().map(|c| &c.user))
            .finish_non_exhaustive()
    }
}

/// What a gateway call failed with.
#[derive(Debug)]
pub(super) enum GatewayError {
    /// etcd answered "not found" (an expired lease, a missing key).
    NotFound,
    /// No endpoint could be reached, or one answered something unexpected.
    Unavailable(String),
    /// The auth token was refused (missing, invalid or expired).
    Unauthenticated(String),
}

impl From<GatewayError> for RegistryError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::NotFound => RegistryError::Unavailable("etcd: not found".into()),
            GatewayError::Unavailable(message) | GatewayError::Unauthenticated(message) => {
                RegistryError::Unavailable(message)
            }
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

impl Gateway {
    /// A client of the cluster at `endpoints` (each `http://host:port` or
    /// `https://host:port`), using `tls` for HTTPS.
    pub(super) fn new(
        endpoints: &[String],
        tls: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<Self, RegistryError> {
        if endpoints.is_empty() {
            return Err(RegistryError::Invalid {
                field: "etcd_endpoints",
                reason: "name at least one endpoint, e.g. http://127.0.0.1:2379".into(),
            });
        }
        let endpoints = endpoints
            .iter()
            .map(|endpoint| base_url("etcd_endpoints", endpoint))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Gateway {
            endpoints,
            current: AtomicUsize::new(0),
            client: http_client(tls, Duration::from_secs(3)),
            timeout,
            credentials: None,
            token: Mutex::new(None),
        })
    }

    /// The same gateway, authenticating as `user` (etcd's user/password authentication).
    pub(super) fn with_credentials(&self, user: &str, password: &str) -> Gateway {
        Gateway {
            endpoints: self.endpoints.clone(),
            current: AtomicUsize::new(self.current.load(Ordering::Relaxed)),
            client: self.client.clone(),
            timeout: self.timeout,
            credentials: Some(Arc::new(Credentials {
                user: user.to_owned(),
                password: password.to_owned(),
            })),
            token: Mutex::new(None),
        }
    }

    /// The auth token to send, authenticating first if there is none yet; `None` without
    /// credentials.
    async fn token(&self) -> Result<Option<Arc<str>>, GatewayError> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        if let Some(token) = self.token.locked().clone() {
            return Ok(Some(token));
        }
        let body = json!({ "name": credentials.user, "password": credentials.password });
        let answer: Authenticated = self.unary("/v3/auth/authenticate", &body, None).await?;
        let token: Arc<str> = answer.token.into();
        *self.token.locked() = Some(token.clone());
        Ok(Some(token))
    }

    fn forget_token(&self) {
        *self.token.locked() = None;
    }

    /// Sends `body` to `path` on the current endpoint, trying the others in turn when it
    /// cannot be reached; returns the answer's status and (unread) body.
    pub(super) async fn send(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<http::Response<Incoming>, GatewayError> {
        let token = self.token().await?;
        self.send_with(path, body, token.as_deref()).await
    }

    async fn send_with(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<http::Response<Incoming>, GatewayError> {
        let body = Bytes::from(body.to_string());
        let first = self.current.load(Ordering::Relaxed);
        let mut last_error = String::new();
        for step in 0..self.endpoints.len() {
            let index = (first + step) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(format!("{endpoint}{path}"))
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, token);
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
            match tokio::time::timeout(self.timeout, self.client.request(request)).await {
                Ok(Ok(response)) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Ok(Err(e)) => last_error = format!("{endpoint}: {}", crate::describe(&e)),
                Err(_) => last_error = format!("{endpoint}: no answer in {:?}", self.timeout),
            }
        }
        Err(GatewayError::Unavailable(format!("etcd: {last_error}")))
    }

    /// A unary call: `body` to `path`, the whole answer decoded as `T`. An expired auth token
    /// is replaced and the call made once more.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Value,
    ) -> Result<T, GatewayError> {
        let token = self.token().await?;
        match self.unary(path, &body, token.as_deref()).await {
            Err(GatewayError::Unauthenticated(_)) if self.credentials.is_some() => {
                self.forget_token();
                let token = self.token().await?;
                self.unary(path, &body, token.as_deref()).await
            }
            other => other,
        }
    }

    async fn unary<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<T, GatewayError> {
        let response = self.send_with(path, body, token).await?;
        let status = response.status();
        let bytes = tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), MAX_ANSWER).collect(),
        )
        .await
        .map_err(|_| GatewayError::Unavailable(format!("etcd {path}: no answer in time")))?
        .map_err(|e| {
            GatewayError::Unavailable(format!("etcd {path}: {}", crate::describe(e.as_ref())))
        })?
        .to_bytes();
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or(ErrorBody {
                message: status.to_string(),
                code: 0,
            });
            return Err(match error.code {
                NOT_FOUND => GatewayError::NotFound,
                UNAUTHENTICATED => {
                    GatewayError::Unauthenticated(format!("etcd {path}: {}", error.message))
                }
                _ if error.message.contains("user name is empty") => {
                    GatewayError::Unavailable(format!(
                        "etcd {path}: the cluster requires authentication; set a user and password"
                    ))
                }
                _ => GatewayError::Unavailable(format!("etcd {path}: {}", error.message)),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| GatewayError::Unavailable(format!("etcd {path}: bad answer: {e}")))
    }

    /// The keys from `key` up to `range_end` (exclusive), with their values unless
    /// `keys_only`.
    pub(super) async fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        keys_only: bool,
    ) -> Result<Range, GatewayError> {
        self.call(
            "/v3/kv/range",
            json!({ "key": encode(key), "range_end": encode(range_end), "keys_only": keys_only }),
        )
        .await
    }

    /// Writes `key` (attached to `lease`, if any); returns what it held before.
    pub(super) async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<Option<KeyValue>, GatewayError> {
        let answer: PutAnswer = self
            .call(
                "/v3/kv/put",
                json!({
                    "key": encode(key),
                    "value": encode(value),
                    "lease": lease.to_string(),
                    "prev_kv": true,
                }),
            )
            .await?;
        Ok(answer.prev_kv)
    }

    /// Writes `key`, keeping its lease, only if nobody has written it since `mod_revision`;
    /// returns whether it did.
    pub(super) async fn put_if_unchanged(
        &self,
        key: &[u8],
        value: &[u8],
        mod_revision: i64,
        has_lease: bool,
    ) -> Result<bool, GatewayError> {
        let answer: TxnAnswer = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{
                        "key": encode(key),
                        "target": "MOD",
                        "result": "EQUAL",
                        "mod_revision": mod_revision.to_string(),
                    }],
                    "success": [{ "request_put": {
                        "key": encode(key),
                        "value": encode(value),
                        "ignore_lease": has_lease,
                    }}],
                }),
            )
            .await?;
        Ok(answer.succeeded)
    }

    /// Deletes `key`; returns what it held, or `None` if there was no such key.
    pub(super) async fn delete(&self, key: &[u8]) -> Result<Option<KeyValue>, GatewayError> {
        let answer: DeleteAnswer = self
            .call(
                "/v3/kv/deleterange",
                json!({ "key": encode(key), "prev_kv": true }),
            )
            .await?;
        Ok(answer.prev_kvs.into_iter().next())
    }

    /// A lease that expires `ttl` after its last keep-alive; returns its id.
    pub(super) async fn grant(&self, ttl: Duration) -> Result<i64, GatewayError> {
        let granted: Granted = self
            .call(
                "/v3/lease/grant",
                json!({ "TTL": ttl.as_secs().max(1).to_string() }),
            )
            .await?;
        Ok(granted.id.0)
    }

    /// Renews a lease; `NotFound` once it has expired.
    pub(super) async fn keep_alive(&self, lease: i64) -> Result<(), GatewayError> {
        let answer: KeepAlive = self
            .call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        // An expired or unknown lease is answered with no TTL (zero).
        match answer.result {
            Some(Granted { ttl: Int(ttl), .. }) if ttl > 0 => Ok(()),
            _ => Err(GatewayError::NotFound),
        }
    }

    /// Revokes a lease (and deletes its keys); an already expired lease is not an error.
    pub(super) async fn revoke(&self, lease: i64) -> Result<(), GatewayError> {
        match self
            .call::<Value>("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await
        {
            Ok(_) | Err(GatewayError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `bytes` as the gateway wants them.
pub(super) fn encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The key just past every key starting with `prefix` (etcd's `range_end` for a prefix).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the keyspace.
    vec![0]
}

/// A 64-bit integer, which the gateway writes as a string (and accepts as either).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Int(pub(super) i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(i64),
            Text(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Number(n) => Ok(Int(n)),
            Either::Text(s) => s.parse().map(Int).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Int {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Bytes the gateway writes as base64.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Base64(pub(super) Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text)
            .map(Base64)
            .map_err(serde::de::Error::custom)
    }
}

/// The header every answer carries.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Header {
    /// The store's revision when the answer was made.
    #[serde(default)]
    pub(super) revision: Int,
}

/// A key and its value (fields the gateway leaves out when zero default to zero).
#[derive(Debug, Default, Deserialize)]
pub(super) struct KeyValue {
    #[serde(default)]
    pub(super) key: Base64,
    #[serde(default)]
    pub(super) value: Base64,
    #[serde(default)]
    pub(super) mod_revision: Int,
    #[serde(default)]
    pub(super) lease: Int,
}

/// The answer to a range.
#[derive(Debug, Deserialize)]
pub(super) struct Range {
    #[serde(default)]
    pub(super) header: Header,
    #[serde(default)]
    pub(super) kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct Authenticated {
    token: String,
}

#[derive(Deserialize)]
struct PutAnswer {
    prev_kv: Option<KeyValue>,
}

#[derive(Deserialize)]
struct DeleteAnswer {
    #[serde(default)]
    prev_kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct TxnAnswer {
    #[serde(default)]
    succeeded: bool,
}

#[derive(Deserialize)]
struct Granted {
    #[serde(rename = "ID", default)]
    id: Int,
    #[serde(rename = "TTL", default)]
    ttl: Int,
}

#[derive(Deserialize)]
struct KeepAlive {
    result: Option<Granted>,
}

/// One message of a watch stream.
#[derive(Debug, Deserialize)]
pub(super) struct WatchMessage {
    pub(super) result: Option<WatchResult>,
    /// Set when the stream itself failed.
    pub(super) error: Option<Value>,
}

/// What a watch message reports.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WatchResult {
    #[serde(default)]
    pub(super) header: Header,
    /// The watch was cancelled (e.g. its start revision was compacted away).
    #[serde(default)]
    pub(super) canceled: bool,
    #[serde(default)]
    pub(super) events: Vec<Event>,
}

/// A change to one key.
#[derive(Debug, Deserialize)]
pub(super) struct Event {
    /// `PUT` (left out, the default) or `DELETE`.
    #[serde(rename = "type", default)]
    pub(super) kind: Option<String>,
    pub(super) kv: KeyValue,
}

impl Event {
    /// Whether the key was deleted (or its lease expired).
    pub(super) fn is_delete(&self) -> bool {
        self.kind.as_deref() == Some("DELETE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/sdk/"), b"/sdk0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn gateway_numbers_and_bytes_decode() {
        let range: Range = serde_json::from_str(
            r#"{"header":{"revision":"7"},"kvs":[{"key":"Zm9v","value":"YmFy","mod_revision":"5","lease":"42"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(range.header.revision, Int(7));
        assert_eq!(range.kvs[0].key.0, b"foo");
        assert_eq!(range.kvs[0].value.0, b"bar");
        assert_eq!(range.kvs[0].lease, Int(42));
        let event: Event =
            serde_json::from_str(r#"{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"9"}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(event.is_delete());
    }

    #[test]
    fn endpoints_are_checked() {
        let gateway = |endpoints: &[&str]| {
            let endpoints: Vec<String> = endpoints.iter().map(|e| (*e).to_owned()).collect();
            let tls = crate::backend::client::default_tls().expect("tls");
            Gateway::new(&endpoints, tls, Duration::from_secs(1))
        };
        assert!(gateway(&[]).is_err());
        assert!(gateway(&["ftp://x:1"]).is_err());
        assert!(gateway(&["http://127.0.0.1:2379/", "https://etcd.internal:2379"]).is_ok());
    }
}
