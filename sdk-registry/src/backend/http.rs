use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::{de::DeserializeOwned, Deserialize};
use tokio::sync::watch;

use super::{
    client::{self, default_tls, http_client, HttpClient},
    name_segment, BoxFuture, RegistryBackend, Snapshot, WatchProblems,
};
use crate::{backoff::Reconnect, HealthStatus, InstanceRecord, RegistryError, ServiceInstance};

/// A client of the `sdk-registry` server, as a backend.
///
/// Watches are long polls (`/v1/services/{service}/watch`) feeding a channel; if the server
/// is unreachable or refuses the token, the channel keeps the last snapshot, the failure is
/// logged (once, and again when it clears) and reported by
/// [`watch_problem`](RegistryBackend::watch_problem), and the poll is tried again after a
/// jittered backoff ([`Reconnect`]).
#[derive(Clone)]
pub struct HttpBackend {
    base: String,
    token: Option<String>,
    client: HttpClient,
    /// Each followed service's current failure, while it has one.
    problems: WatchProblems,
}

impl fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackend")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct WatchAnswer {
    version: u64,
    instances: Vec<InstanceRecord>,
}

impl HttpBackend {
    /// A client of the registry at `base_url` (`http://host:port` or `https://host:port`,
    /// HTTPS trusting the Mozilla roots), sending `token` as a bearer token when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, RegistryError> {
        Self::with_tls(base_url, token, default_tls()?)
    }

    /// [`new`](Self::new) with the given rustls configuration for HTTPS (a private CA,
    /// client certificates).
    pub fn with_tls(
        base_url: &str,
        token: Option<String>,
        tls: rustls::ClientConfig,
    ) -> Result<Self, RegistryError> {
        Ok(HttpBackend {
            base: client::base_url("url", base_url)?,
            token,
            client: http_client(tls, Duration::from_secs(5)),
            problems: WatchProblems::default(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Bytes, RegistryError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| RegistryError::Invalid {
                field: "request",
                reason: e.to_string(),
            })?;
        let unavailable =
            |e: &dyn fmt::Display| RegistryError::Unavailable(format!("{}: {e}", self.base));
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| unavailable(&"no answer in time"))?
            .map_err(|e| unavailable(&crate::describe(&e)))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), 64 * 1024 * 1024)
            .collect()
            .await
            .map_err(|e| unavailable(&e))?
            .to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map_or_else(|_| status.to_string(), |b| b.error);
        Err(match status {
            // The registry answers 404 only for an instance it does not have, with its own
            // JSON error; anything else is a URL that is not the registry's API.
            StatusCode::NOT_FOUND if is_instance_path(path) && message != status.to_string() => {
                let mut parts = path.split('/').skip(3);
                let service = parts.next().unwrap_or_default().to_owned();
                let id = parts.nth(1).unwrap_or_default().to_owned();
                RegistryError::UnknownInstance { service, id }
            }
            StatusCode::NOT_FOUND => {
                let shown = path.split('?').next().unwrap_or_default();
                RegistryError::NotFound(format!("{}{shown}", self.base))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                RegistryError::Unauthorized(format!("{}: {status}: {message}", self.base))
            }
            s if s.is_client_error() => RegistryError::Invalid {
                field: "request",
                reason: message,
            },
            _ => RegistryError::Unavailable(format!("{}: {status}: {message}", self.base)),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RegistryError> {
        let bytes = self
            .call(Method::GET, path, None, Duration::from_secs(10))
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Unavailable(format!("{}: bad answer: {e}", self.base)))
    }

    async fn follow(self, service: String, changes: watch::Sender<Snapshot>) {
        let mut version = 0;
        let mut reconnect = Reconnect::new();
        loop {
            let path = format!("/v1/services/{service}/watch?after={version}&wait=30");
            let poll = async {
                let bytes = self
                    .call(Method::GET, &path, None, Duration::from_secs(40))
                    .await?;
                serde_json::from_slice::<WatchAnswer>(&bytes)
                    .map_err(|e| RegistryError::Unavailable(format!("bad watch answer: {e}")))
            };
            let answer = tokio::select! {
                answer = poll => answer,
                // Nobody is watching any more.
                () = changes.closed() => break,
            };
            match answer {
                Ok(answer) => {
                    if reconnect.failures() > 0 {
                        tracing::info!(%service, registry = %self.base, "following the registry again");
                        self.problems.set(&service, None);
                        reconnect.succeeded();
                    }
                    version = answer.version;
                    changes.send_replace(Arc::new(
                        answer.instances.into_iter().map(Arc::new).collect(),
                    ));
                }
                Err(e) => {
                    if reconnect.failures() == 0 {
                        tracing::warn!(%service, error = %e, "lost the registry; keeping the last known instances");
                    }
                    self.problems.set(&service, Some(e));
                    let wait = reconnect.failed();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = changes.closed() => break,
                    }
                }
            }
        }
        self.problems.set(&service, None);
    }
}

impl HttpBackend {
    /// A write to one instance: `{method} /v1/services/{service}/instances/{id}{suffix}`.
    async fn write_instance(
        &self,
        method: Method,
        service: &str,
        id: &str,
        suffix: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(), RegistryError> {
        let path = format!(
            "/v1/services/{}/instances/{}{suffix}",
            name_segment(service)?,
            name_segment(id)?
        );
        self.call(method, &path, body, Duration::from_secs(10))
            .await
            .map(drop)
    }
}

impl RegistryBackend for HttpBackend {
    fn register(&self, instance: ServiceInstance) -> BoxFuture<'_, Result<(), RegistryError>> {
        Box::pin(async move {
            instance.validate()?;
            let body = serde_json::to_vec(&instance).map_err(|e| RegistryError::Invalid {
                field: "instance",
                reason: e.to_string(),
            })?;
            self.call(
                Method::POST,
                "/v1/instances",
                Some(body),
                Duration::from_secs(10),
            )
            .await
            .map(drop)
        })
    }

    fn deregister<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            self.write_instance(Method::DELETE, service, id, "", None)
                .await
        })
    }

    fn heartbeat<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            self.write_instance(Method::PUT, service, id, "/heartbeat", None)
                .await
        })
    }

    fn set_health<'a>(
        &'a self,
        service: &'a str,
        id: &'a str,
        health: HealthStatus,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let body =
                serde_json::to_vec(&serde_json::json!({ "health": health })).map_err(|e| {
                    RegistryError::Invalid {
                        field: "health",
                        reason: e.to_string(),
                    }
                })?;
            self.write_instance(Method::PUT, service, id, "/health", Some(body))
                .await
        })
    }

    fn instances<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InstanceRecord>, RegistryError>> {
        Box::pin(async move {
            self.get(&format!(
                "/v1/services/{}/instances",
                name_segment(service)?
            ))
            .await
        })
    }

    fn services(&self) -> BoxFuture<'_, Result<Vec<String>, RegistryError>> {
        Box::pin(async move { self.get("/v1/services").await })
    }

    fn watch<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<watch::Receiver<Snapshot>, RegistryError>> {
        Box::pin(async move {
            let service = name_segment(service)?.to_owned();
            let initial = match self.instances(&service).await {
                Ok(initial) => initial,
                Err(e) => {
                    // The follower reports and retries; the watch starts empty meanwhile.
                    self.problems.set(&service, Some(e));
                    Vec::new()
                }
            };
            let (changes, receiver) =
                watch::channel(Arc::new(initial.into_iter().map(Arc::new).collect()));
            tokio::spawn(self.clone().follow(service, changes));
            Ok(receiver)
        })
    }

    fn watch_problem(&self, service: &str) -> Option<RegistryError> {
        self.problems.get(service)
    }
}

/// Whether `path` names one instance (`/v1/services/<service>/instances/<id>...`).
fn is_instance_path(path: &str) -> bool {
    let mut parts = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .skip(3);
    parts.next().is_some() && parts.next() == Some("instances") && parts.next().is_some()
}
