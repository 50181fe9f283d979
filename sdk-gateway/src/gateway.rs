//! [`Gateway`]: the routes, the token verifier, the client identities and the limits,
//! shared by every request; [`Gateway::router`] serves them.

use std::{sync::Arc, time::Duration};

use crate::{
    auth::Verifier,
    clients::TrustedProxies,
    config::{GatewayConfig, GatewayConfigError},
    limit::SharedLimits,
    routes::Routes,
};

/// How long a request body may send nothing, unless [`Gateway::with_body_timeout`] says (30 s).
pub(crate) const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway: cheap to clone, one per process.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = sdk::SdkConfig::from_file("gateway.toml")?;
/// let sdk = sdk::ServiceSdk::from_config(config.clone())?;
/// let gateway = sdk_gateway::Gateway::new(sdk, &sdk_gateway::GatewayConfig::from_sdk_config(&config)?)?;
/// gateway.prefetch_keys().await;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let app = gateway.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) sdk: sdk::ServiceSdk,
    pub(crate) routes: Routes,
    pub(crate) verifier: Option<Verifier>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) limits: Option<SharedLimits>,
    /// `http`, or `https` when the gateway terminates TLS (for `x-forwarded-proto`).
    pub(crate) scheme: &'static str,
    /// How long a client's request body may send nothing before it is cut off (408).
    pub(crate) body_timeout: Duration,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(crate) dashboard_url: Option<String>,
}

impl Gateway {
    /// A gateway for `config`, calling services through `sdk`. Starts connecting to the
    /// shared-limits Redis, if one is configured (limits count locally until it answers).
    pub fn new(sdk: sdk::ServiceSdk, config: &GatewayConfig) -> Result<Self, GatewayConfigError> {
        let invalid = |key: &str, reason: String| GatewayConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        let limits = SharedLimits::connect(&config.rate_limit)
            .map_err(|e| invalid("gateway.rate_limit", e))?;
        let verifier = match &config.jwt {
            Some(jwt) => Some(Verifier::new(jwt, &sdk).map_err(|e| invalid("gateway.jwt", e))?),
            None => None,
        };
        let routes =
            Routes::new(config, &sdk, limits.as_ref()).map_err(|e| invalid("routes", e))?;
        Ok(Gateway {
            shared: Arc::new(Shared {
                routes,
                verifier,
                proxies: TrustedProxies::new(config.clients.trusted_proxies.clone()),
                limits,
                scheme: "http",
                body_timeout: DEFAULT_BODY_TIMEOUT,
                metrics: None,
                dashboard_url: config.clients.dashboard_url.clone(),
                sdk,
            }),
        })
    }

    /// Renders `GET /metrics` from `handle` (default: `/metrics` answers 404).
    pub fn with_metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.metrics = Some(handle);
        }
        self
    }

    /// How long a client's request body may send no byte before the gateway cuts it off
    /// and answers 408 (default 30 s, as the registry's and the event bus's). A stalled or
    /// aborted upload is the client's failure: it never counts against the service.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.body_timeout = timeout;
        }
        self
    }

    /// Says `https` in `x-forwarded-proto` (the gateway terminates TLS).
    pub fn behind_tls(mut self) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.scheme = "https";
        }
        self
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Fetches the JWKS now, so the first request does not wait for it.
    pub async fn prefetch_keys(&self) {
        if let Some(verifier) = &self.shared.verifier {
            verifier.prefetch().await;
        }
    }

    /// Forgets idle clients' rate-limit state every `every` until the gateway is dropped
    /// (the binary runs it once a minute).
    pub fn spawn_upkeep(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                for route in shared.routes.all() {
                    if let Some(limiter) = &route.limiter {
                        limiter.forget_idle();
                    }
                }
            }
        })
    }
}
