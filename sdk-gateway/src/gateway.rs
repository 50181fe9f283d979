//! [`Gateway`]: the routes, the token verifier, the client identities and the limits,
//! shared by every request; [`Gateway::router`] serves them.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};

use sdk::circuit_breaker::CircuitState;

use crate::{
    auth::Verifier,
    clients::TrustedProxies,
    config::{GatewayConfig, GatewayConfigError},
    error::GatewayError,
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
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    dashboard_url: Option<String>,
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

    /// The router: `/` (what the gateway is, and a link to the registry dashboard),
    /// `/health`, `/metrics`, and every configured route. Serve it with the peer's address
    /// (`into_make_service_with_connect_info::<SocketAddr>()`, or `sdk_registry`'s `serve`,
    /// which adds it).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .fallback(crate::proxy::handle)
            // A client's `x-request-deadline` (or `grpc-timeout`) shortens a route's
            // timeout, never lengthens it, and travels on to the service.
            .layer(sdk::deadline::InheritDeadlineLayer::new())
            .with_state(self.clone())
    }
}

/// What the gateway is: HTML for a browser (with the dashboard's link), JSON otherwise.
async fn index(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let shared = gateway.shared();
    let routes: Vec<_> = shared
        .routes
        .all()
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.config.name, "path": r.config.path, "service": r.config.service,
                "protected": r.config.protected, "websocket": r.config.websocket,
            })
        })
        .collect();
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        return Json(serde_json::json!({
            "name": "sdk-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "dashboard": shared.dashboard_url,
            "routes": routes,
        }))
        .into_response();
    }
    let mut rows = String::new();
    for route in shared.routes.all() {
        let c = &route.config;
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.path),
            escape(&c.service),
            if c.protected { "token" } else { "public" },
        ));
    }
    let dashboard = match &shared.dashboard_url {
        Some(url) => format!(
            "<p><a id=\"dashboard\" href=\"{}\">The registry dashboard</a>: every service and instance, live.</p>",
            escape(url)
        ),
        None => "<p>No registry dashboard is configured (<code>[gateway.clients] dashboard_url</code>).</p>".to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sdk-gateway</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem}}td,th{{padding:.3rem .8rem;text-align:left}}</style>\
         </head><body><h1>sdk-gateway</h1>{dashboard}<table><tr><th>route</th><th>path</th><th>service</th><th>access</th></tr>{rows}</table>\
         <p><a href=\"/health\">/health</a> · <a href=\"/metrics\">/metrics</a></p></body></html>"
    ))
    .into_response()
}

/// `&`, `<`, `>`, `"` and `'` as entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Liveness, with each route's service and breakers, and whether shared limits are live.
async fn health(State(gateway): State<Gateway>) -> Json<serde_json::Value> {
    let shared = gateway.shared();
    let routes: Vec<_> = shared
        .routes
        .all()
        .iter()
        .map(|route| {
            // The worst of the route's breakers (one per method), for a named service.
            let breaker = route.fixed_client().map(|client| {
                client
                    .circuit_state()
                    .into_iter()
                    .filter(|c| c.endpoint.split_once(' ').map(|(_, e)| e) == Some(&route.config.path))
                    .map(|c| c.state)
                    .max_by_key(|state| match state {
                        CircuitState::Closed => 0,
                        CircuitState::HalfOpen => 1,
                        CircuitState::Open => 2,
                    })
                    .map_or("closed", |state| match state {
                        CircuitState::Closed => "closed",
                        CircuitState::HalfOpen => "half_open",
                        CircuitState::Open => "open",
                    })
            });
            serde_json::json!({ "route": route.config.name, "service": route.config.service, "breaker": breaker })
        })
        .collect();
    Json(serde_json::json!({
        "status": "ok",
        "routes": routes,
        "shared_limits": shared.limits.as_ref().map(|l| if l.is_connected() { "connected" } else { "local" }),
    }))
}

async fn metrics_text(State(gateway): State<Gateway>) -> Response {
    match &gateway.shared().metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => GatewayError::new(StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}
