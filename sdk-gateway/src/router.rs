//! The gateway's router: its own pages (`/`, `/health`, `/metrics`) and every configured
//! route through [`proxy`](crate::proxy).

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};

use sdk::circuit_breaker::CircuitState;

use crate::{error::GatewayError, gateway::Gateway};

impl Gateway {
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
                    .map_or("closed", CircuitState::as_str)
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
