use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use tower::Service;

use super::{declares_too_large, BodyTooLarge, HttpRequest, HttpResponse, TransportError};
use crate::box_error::BoxError;

/// Settings of the built-in hyper transport.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Largest response body read, in bytes (default 10 MiB).
    pub max_response_bytes: usize,
    /// Idle pooled connections kept per host (default 64).
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept (default 90 s).
    pub pool_idle_timeout: Duration,
    /// TCP connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Speak HTTP/2 without negotiation, also over plain TCP (default off: HTTP/1.1, with
    /// HTTP/2 negotiated through ALPN over TLS).
    pub http2_prior_knowledge: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_response_bytes: 10 * 1024 * 1024,
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(5),
            http2_prior_knowledge: false,
        }
    }
}

impl TransportConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
}

setters!(const TransportConfig {
    /// Largest response body read, in bytes (default 10 MiB).
    max_response_bytes: usize,
    /// Idle pooled connections kept per host (default 64).
    pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept (default 90 s).
    pool_idle_timeout: Duration,
    /// TCP connect timeout (default 5 s).
    connect_timeout: Duration,
    /// Speak HTTP/2 without negotiation (default off).
    http2_prior_knowledge: bool,
});

/// hyper-util's pooled client, reading each response body whole within a size limit.
///
/// The client sits behind one `Arc`: the pipeline is cloned per call (tower's `&mut self`
/// services), and hyper-util's client is a bundle of a dozen `Arc`s.
#[derive(Clone, Debug)]
pub struct HyperTransport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_response_bytes: usize,
}

impl HyperTransport {
    /// A transport with the given settings, trusting the Mozilla root certificates
    /// (webpki-roots), so it behaves the same in a distroless container as on a laptop.
    /// Use [`with_tls`](Self::with_tls) for private roots or client certificates.
    pub fn new(config: &TransportConfig) -> Result<Self, rustls::Error> {
        Ok(Self::with_tls(config, sdk_registry::default_tls_config()?))
    }

    /// A transport using the given rustls configuration for HTTPS (custom roots, client
    /// certificates).
    pub fn with_tls(config: &TransportConfig, tls: rustls::ClientConfig) -> Self {
        let connector = sdk_registry::https_connector(
            tls,
            sdk_registry::ConnectSettings {
                connect_timeout: config.connect_timeout,
                keepalive: None,
                http2_only: config.http2_prior_knowledge,
                http2: true,
            },
        );
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(config.pool_idle_timeout)
            .http2_only(config.http2_prior_knowledge)
            .build(connector);
        HyperTransport {
            inner: Arc::new(Inner {
                client,
                max_response_bytes: config.max_response_bytes,
            }),
        }
    }
}

impl Service<HttpRequest> for HyperTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    // One boxed future per attempt: reading the body is an async loop, and naming that
    // state machine by hand would buy ~100 instructions out of ~35,000.
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let head = request.method() == http::Method::HEAD;
        let response = self.inner.client.request(request.map(Full::new));
        let limit = self.inner.max_response_bytes;
        Box::pin(async move {
            let response = response
                .await
                .map_err(|e| TransportError::new(e.is_connect(), e))?;
            let (parts, body) = response.into_parts();
            if declares_too_large(head, parts.status, &parts.headers, limit) {
                return Err(BodyTooLarge { limit }.into());
            }
            let body = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(BodyTooLarge { limit }.into())
                }
                Err(e) => return Err(TransportError::new(false, e).into()),
            };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}
