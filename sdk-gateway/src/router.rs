//! The gateway's router: its own pages (`/`, `/health`, `/metrics`) and every configured
//! route through [`proxy`](crate::proxy).

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    task::{Context, Poll},
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use sdk::{
    circuit_breaker::CircuitState,
    deadline::{InheritDeadline, InheritDeadlineLayer, InheritFuture},
};
use tower::{Layer as _, Service};

use crate::{error::GatewayError, gateway::Gateway};

/// The gateway's own pages: what it is, its health, its metrics. Every other path is a
/// route's.
const PAGES: [&str; 3] = ["/", "/health", "/metrics"];

impl Gateway {
    /// The router: `/` (what the gateway is, and a link to the registry dashboard),
    /// `/health`, `/metrics`, and every configured route. Serve it with the peer's address
    /// (`into_make_service_with_connect_info::<SocketAddr>()`, or `sdk_registry`'s `serve`,
    /// which adds it). To embed the gateway in an axum app; [`app`](Self::app) answers the
    /// same, at less cost per request.
    pub fn router(&self) -> Router {
        let [index_page, health_page, metrics_page] = PAGES;
        Router::new()
            .route(index_page, get(index))
            .route(health_page, get(health))
            .route(metrics_page, get(metrics_text))
            .fallback(crate::proxy::handle)
            // A client's `x-request-deadline` (or `grpc-timeout`) shortens a route's
            // timeout, never lengthens it, and travels on to the service.
            .layer(InheritDeadlineLayer::new())
            .with_state(self.clone())
    }

    /// The gateway as the `sdk-gateway` binary serves it (with `sdk_registry::server::serve`):
    /// its own pages through [`router`](Self::router), and every other request straight to
    /// the proxy, which matches its routes itself and is made for each connection with its
    /// client's address. Through the router instead, axum finds no route, matches its
    /// fallback, inserts its parameters and the address into each request and clones its
    /// boxed handler, all for nothing (docs/benchmarks.md, "Gateway: where a request's
    /// instructions go").
    pub fn app(&self) -> GatewayApp {
        GatewayApp {
            gateway: self.clone(),
            pages: self.router(),
        }
    }
}

/// [`Gateway::app`]: makes each connection's [`GatewayService`].
#[derive(Clone, Debug)]
pub struct GatewayApp {
    gateway: Gateway,
    pages: Router,
}

impl sdk_server::App for GatewayApp {
    type Body = sdk::transport::Body;
    type Service = GatewayService;

    fn for_peer(&self, peer: SocketAddr) -> GatewayService {
        let proxy = Proxy {
            gateway: self.gateway.clone(),
            peer,
        };
        GatewayService {
            pages: self.pages.clone(),
            proxy: InheritDeadlineLayer::new().layer(proxy),
        }
    }
}

/// The gateway's service for the requests of one client connection.
#[derive(Clone, Debug)]
pub struct GatewayService {
    pages: Router,
    proxy: InheritDeadline<Proxy>,
}

/// The proxy's answer to one request (boxed once: its handler is an `async fn`).
type Answer =
    std::pin::Pin<Box<dyn Future<Output = Result<crate::proxy::Response, Infallible>> + Send>>;

/// Response future of [`GatewayService`]: a page's answer, or a route's under the caller's
/// deadline.
pub struct GatewayFuture(Kind);

enum Kind {
    // The router's future, boxed: pages are rare.
    Page(Answer),
    Route(InheritFuture<Answer, crate::proxy::Response, Infallible>),
}

impl std::fmt::Debug for GatewayFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayFuture").finish_non_exhaustive()
    }
}

impl Future for GatewayFuture {
    type Output = Result<crate::proxy::Response, Infallible>;

    // Both kinds are `Unpin` (a box, and a future over a box), so no projection is needed.
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Kind::Page(future) => future.as_mut().poll(cx),
            Kind::Route(future) => std::pin::Pin::new(future).poll(cx),
        }
    }
}

impl<B> Service<http::Request<B>> for GatewayService
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = crate::proxy::Response;
    type Error = Infallible;
    type Future = GatewayFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both are always ready (a router, and a proxy with nothing to wait for).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> GatewayFuture {
        GatewayFuture(match PAGES.contains(&request.uri().path()) {
            true => {
                let page = self.pages.call(request);
                Kind::Page(Box::pin(async move {
                    match page.await {
                        Ok(response) => Ok(crate::proxy::from_axum(response)),
                        Err(never) => match never {},
                    }
                }))
            }
            false => Kind::Route(self.proxy.call(request.map(sdk::transport::Body::new))),
        })
    }
}

/// The proxy as a service: every request for a route, from one client's connection.
#[derive(Clone, Debug)]
struct Proxy {
    gateway: Gateway,
    peer: SocketAddr,
}

impl Service<crate::proxy::Request> for Proxy {
    type Response = crate::proxy::Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: crate::proxy::Request) -> Answer {
        let (gateway, peer) = (self.gateway.clone(), self.peer);
        Box::pin(async move { Ok(crate::proxy::answer(&gateway, peer, request).await) })
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
