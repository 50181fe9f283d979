//! [`ServiceResponse`]: a fully read response, cheap to clone (the cache hands out copies).

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::{class::StatusClass, error::RetryStop, redact::RedactedHeaders};

/// Where a response came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheStatus {
    /// The cache was not used for this call.
    #[default]
    Uncached,
    /// Not in the cache (or expired): fetched from the service (and stored, if cacheable).
    Miss,
    /// Served from the cache without touching the network.
    Hit,
    /// The service failed, so a stale entry was served (stale-if-error).
    Stale,
}

/// A response whose body has been read (within the size limit).
#[derive(Clone)]
pub struct ServiceResponse {
    status: StatusCode,
    /// The status's class, found once when the answer arrives and read by every layer.
    class: StatusClass,
    headers: Arc<HeaderMap>,
    body: Bytes,
    pub(crate) attempts: u32,
    pub(crate) instance: Option<Arc<str>>,
    pub(crate) cache: CacheStatus,
    pub(crate) retry_stop: Option<RetryStop>,
}

impl ServiceResponse {
    /// Builds a response (used by transports; attempts and instance are filled in by the
    /// pipeline).
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        ServiceResponse {
            status,
            class: StatusClass::of(status),
            headers: Arc::new(headers),
            body,
            attempts: 1,
            instance: None,
            cache: CacheStatus::Uncached,
            retry_stop: None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The status's class ([`outcome`](crate::outcome)): whose fault it is if it failed, and
    /// whether to ask again now, later or never. Found once, when the answer arrived; every
    /// layer (retry, breaker, balancer, hedge, cache, metrics) reads this one.
    pub fn class(&self) -> StatusClass {
        self.class
    }

    /// Gives the answer the class `classify` finds (a replaced classification).
    pub(crate) fn reclassify(&mut self, classify: &dyn crate::class::Classify) {
        self.class = classify.classify(self.status, &self.headers);
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The response headers, consuming the response (copied only if the cache shares them).
    pub fn into_headers(self) -> HeaderMap {
        Arc::try_unwrap(self.headers).unwrap_or_else(|shared| (*shared).clone())
    }

    /// The body bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body, consuming the response.
    pub fn into_bytes(self) -> Bytes {
        self.body
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// How many attempts the call took.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The instance that answered (`scheme://host:port`), if the answer came from the network.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Whether the answer came from the cache.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache
    }
}

impl fmt::Debug for ServiceResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceResponse")
            .field("status", &self.status)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("body_len", &self.body.len())
            .field("attempts", &self.attempts)
            .field("instance", &self.instance)
            .field("cache", &self.cache)
            .finish()
    }
}

/// The answer to a streamed call ([`RequestBuilder::streamed`](crate::client::RequestBuilder::streamed)):
/// its head as the pipeline saw it (status, headers, attempts, instance; the body empty),
/// and its body, still streaming from the connection.
#[derive(Debug)]
#[non_exhaustive]
pub struct Streamed {
    /// Status, headers, attempts and instance.
    pub head: ServiceResponse,
    /// The body, read as it arrives.
    pub body: crate::transport::Body,
    /// For a `101 Switching Protocols` answer (a request with `Connection: upgrade`, e.g. a
    /// WebSocket handshake, over HTTP/1.1): the connection, once switched. The bytes that
    /// follow on it are the caller's.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}
