use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::HeaderValue;
use http_body_util::BodyExt;
use hyper_util::{
    client::legacy::{Client, ResponseFuture},
    rt::{TokioExecutor, TokioTimer},
};
use sdk_base::https::SharedConnector;
use tower::Service;

use super::{
    exchange::{BodyAlreadySent, Exchange},
    read_body, Body, HttpRequest, HttpResponse, StreamRequest, StreamResponse, TransportError,
};
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
    /// The `User-Agent` sent when a request has none of its own (default `sdk/<version>`).
    pub user_agent: HeaderValue,
    /// Which addresses may be connected to (default `None`: every address). A server that
    /// calls URLs its tenants give it (webhooks) sets
    /// [`AddressPolicy::public_only`](sdk_base::https::AddressPolicy::public_only): loopback,
    /// private and link-local addresses are then refused after DNS, before any byte is
    /// sent, and the call fails as an invalid request.
    pub addresses: Option<Arc<sdk_base::https::AddressPolicy>>,
}

/// The default `User-Agent`: `sdk/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("sdk/", env!("CARGO_PKG_VERSION"));

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_response_bytes: 10 * 1024 * 1024,
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(5),
            http2_prior_knowledge: false,
            user_agent: HeaderValue::from_static(DEFAULT_USER_AGENT),
            addresses: None,
        }
    }
}

impl TransportConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `User-Agent` sent when a request has none of its own (default `sdk/<version>`).
    #[must_use]
    pub fn user_agent(mut self, user_agent: HeaderValue) -> Self {
        self.user_agent = user_agent;
        self
    }

    /// Which addresses may be connected to (default: every address). See
    /// [`addresses`](Self::addresses).
    #[must_use]
    pub fn addresses(mut self, policy: sdk_base::https::AddressPolicy) -> Self {
        self.addresses = Some(Arc::new(policy));
        self
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
    client: Client<SharedConnector, Body>,
    max_response_bytes: usize,
    user_agent: HeaderValue,
}

impl Inner {
    /// Sends `request`, with the default `User-Agent` unless it has one, and the streamed
    /// body in place of its own when it is part of a streamed call (`exchange`, which the
    /// caller has already taken from the request).
    fn send(
        &self,
        mut request: StreamRequest,
        exchange: Option<&Exchange>,
    ) -> Result<ResponseFuture, BodyAlreadySent> {
        if let Some(exchange) = exchange {
            *request.body_mut() = exchange.take_request()?;
        }
        if let http::header::Entry::Vacant(entry) =
            request.headers_mut().entry(http::header::USER_AGENT)
        {
            entry.insert(self.user_agent.clone());
        }
        Ok(self.client.request(request))
    }
}

impl HyperTransport {
    /// A transport with the given settings, trusting the Mozilla root certificates
    /// (webpki-roots), so it behaves the same in a distroless container as on a laptop.
    /// Use [`with_tls`](Self::with_tls) for private roots or client certificates.
    pub fn new(config: &TransportConfig) -> Result<Self, rustls::Error> {
        Ok(Self::with_tls(
            config,
            sdk_base::https::default_tls_config()?,
        ))
    }

    /// A transport using the given rustls configuration for HTTPS (custom roots, client
    /// certificates).
    pub fn with_tls(config: &TransportConfig, tls: rustls::ClientConfig) -> Self {
        let connector = sdk_base::https::https_connector(
            tls,
            sdk_base::https::ConnectSettings {
                connect_timeout: config.connect_timeout,
                keepalive: None,
                http2_only: config.http2_prior_knowledge,
                http2: true,
                addresses: config.addresses.clone(),
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
                user_agent: config.user_agent.clone(),
            }),
        }
    }
}

impl HyperTransport {
    /// The same client with response bodies left streaming, for user layers to wrap (their
    /// body is read at the top of the middleware, within the same size limit).
    pub fn streaming(&self) -> HyperStreaming {
        HyperStreaming {
            inner: self.inner.clone(),
        }
    }

    /// The largest response body read, in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.inner.max_response_bytes
    }
}

impl Service<HttpRequest> for HyperTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    // One boxed future per attempt. Named by hand and held inline instead, it made every
    // future above it larger to move: +291 instructions per call (callgrind, 2026-12-07).
    type Future = crate::box_error::BoxFuture<HttpResponse>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let head = request.method() == http::Method::HEAD;
        let exchange = Exchange::of(&request);
        let response = self
            .inner
            .send(request.map(Body::full), exchange.as_deref());
        let limit = self.inner.max_response_bytes;
        Box::pin(async move {
            let response = response?
                .await
                .map_err(|e| TransportError::new(e.is_connect(), e))?;
            match exchange {
                Some(exchange) => Ok(exchange.park(response.map(streamed))),
                None => read_body(response, head, limit).await,
            }
        })
    }
}

/// [`HyperTransport`] with response bodies left streaming ([`Body`]): the bottom of the
/// stack that user layers wrap.
#[derive(Clone, Debug)]
pub struct HyperStreaming {
    inner: Arc<Inner>,
}

impl Service<StreamRequest> for HyperStreaming {
    type Response = StreamResponse;
    type Error = BoxError;
    type Future = crate::box_error::BoxFuture<StreamResponse>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: StreamRequest) -> Self::Future {
        let exchange = Exchange::of(&request);
        let response = self.inner.send(request, exchange.as_deref());
        Box::pin(async move {
            let response = response?
                .await
                .map_err(|e| TransportError::new(e.is_connect(), e))?;
            Ok(response.map(streamed))
        })
    }
}

/// hyper's body as a [`Body`], a failure while reading it a [`TransportError`].
fn streamed(body: hyper::body::Incoming) -> Body {
    Body::new(body.map_err(|e| TransportError::new(false, e)))
}
