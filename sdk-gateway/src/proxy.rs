//! Forwarding one request: route, method, path check, token, rate limit, then the call
//! through the SDK's pipeline with both bodies streamed.
//!
//! The call is the SDK's [`streamed`](sdk::RequestBuilder::streamed) call: the route's
//! service is balanced, guarded by its breaker (one per route: the endpoint is the route's
//! pattern), bounded by the route's timeout up to the answer's head, and retried only when
//! the method is idempotent and the body empty (a body can be sent once). The request body
//! goes to the service as it arrives, and the answer's body to the client as it arrives,
//! so neither is ever held whole.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, State},
    response::IntoResponse,
};
use http::{HeaderMap, StatusCode};
use sdk::transport::Body;
use tokio::time::Instant;

use crate::{
    auth::{AuthError, Claims},
    error::GatewayError,
    forward,
    gateway::Gateway,
    limit::ClientKey,
    routes::{Matched, Route},
};

/// A request as the proxy takes it, and its answer: both bodies are the SDK's, which the
/// call streams as they are (an empty one is not boxed; a streamed one is boxed once).
pub(crate) type Request = http::Request<Body>;
pub(crate) type Response = http::Response<Body>;

/// The handler of every request that is not for the gateway itself (the router's fallback).
pub(crate) async fn handle(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> axum::response::Response {
    answer(&gateway, peer, request.map(Body::new))
        .await
        .map(axum::body::Body::new)
}

/// An answer made by axum (an error's JSON, a page), as the proxy answers.
pub(crate) fn from_axum(response: axum::response::Response) -> Response {
    response.map(Body::new)
}

/// The answer to a request for a route (404 when none matches), from client `peer`.
pub(crate) async fn answer(gateway: &Gateway, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let shared = gateway.shared();
    if request
        .headers()
        .get_all(http::header::HOST)
        .iter()
        .nth(1)
        .is_some()
    {
        // RFC 9112, 3.2: a request with more than one Host is answered 400.
        return from_axum(
            GatewayError::new(StatusCode::BAD_REQUEST, "more than one Host header").into_response(),
        );
    }
    let matched = match shared.routes.find(request.uri()) {
        Ok(Some(matched)) => matched,
        Ok(None) => {
            let response = from_axum(GatewayError::no_route().into_response());
            shared
                .routes
                .unmatched
                .answered(response.status(), started.elapsed());
            return response;
        }
        Err(e) => return from_axum(e.into_response()),
    };
    let route = matched.route;
    let response = match forward(gateway, matched, peer, request).await {
        Ok(response) => response,
        Err(e) => {
            // Logged when the service failed (the class says whose fault it was); a
            // refused request is the caller's, and only counted.
            if e.fault().counts_against_service() {
                tracing::warn!(route = %route.config.name, status = %e.status(), error = %e, "request failed");
            }
            from_axum(e.into_response())
        }
    };
    route.metrics.answered(response.status(), started.elapsed());
    response
}

async fn forward(
    gateway: &Gateway,
    matched: Matched<'_>,
    peer: SocketAddr,
    request: Request,
) -> Result<Response, GatewayError> {
    let (shared, route) = (gateway.shared(), matched.route);
    let (mut parts, body) = request.into_parts();
    route.allows(&parts.method)?;
    // The path the service gets was judged when the route was found
    // (`check_untrusted_path`), and the SDK checks it again as every path it sends.
    let origin = shared.proxies.origin(peer, &parts.headers);
    let claims = authorize(gateway, route, &parts.headers).await?;
    if let Some(limiter) = &route.limiter {
        let key = match claims.as_ref().and_then(Claims::subject) {
            Some(subject) => ClientKey::Subject(subject.clone()),
            None => ClientKey::Addr(origin.client),
        };
        limiter
            .check(&key)
            .await
            .map_err(GatewayError::rate_limited)?;
    }
    let client = shared.routes.client(&matched, &shared.sdk).await?;
    let upgrade = match route.config.websocket {
        true => Some(crate::ws::take_upgrade(&mut parts)?),
        false => None,
    };
    let verifier = shared.verifier.as_ref();
    // Claim headers are the gateway's to set: whatever a client sent under those names is
    // dropped, on every route.
    let claim_headers = verifier.map_or(&[][..], |v| v.forwarded_headers());
    let headers = std::mem::take(&mut parts.headers);
    let (mut headers, request_id) =
        forward::to_upstream(headers, &origin, shared.scheme, claim_headers);
    if let (Some(verifier), Some(claims)) = (verifier, &claims) {
        verifier.claim_headers(claims, &mut headers);
    }
    if upgrade.is_some() {
        crate::ws::handshake_headers(&mut headers);
    }
    let mut call = client
        .request(parts.method, matched.path)
        .headers(headers)
        .endpoint(route.config.path.clone());
    if let Some(timeout) = route.config.timeout {
        call = call.timeout(timeout);
    }
    let answer = call
        .streamed(client_body(body, shared.body_timeout))
        .await
        .map_err(|e| GatewayError::from(&e))?;
    if let (Some(client), Some(service)) = (upgrade, answer.upgrade) {
        if answer.head.status() == StatusCode::SWITCHING_PROTOCOLS {
            let mut headers = answer.head.into_headers();
            forward::strip_hop_by_hop(&mut headers);
            headers.insert(forward::X_REQUEST_ID, request_id);
            return Ok(crate::ws::switch(client, service, headers, &route.metrics));
        }
    }
    let status = answer.head.status();
    let mut headers = answer.head.into_headers();
    forward::strip_hop_by_hop(&mut headers);
    headers.insert(forward::X_REQUEST_ID, request_id);
    let mut response = Response::new(answer.body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The token's claims on a protected route (401 without a valid one, 403 without the
/// route's scopes); nothing on a public one.
async fn authorize(
    gateway: &Gateway,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Claims>, GatewayError> {
    if !route.config.protected {
        return Ok(None);
    }
    let verifier = gateway
        .shared()
        .verifier
        .as_ref()
        .ok_or_else(|| GatewayError::from(AuthError::Invalid("no token verifier".into())))?;
    let claims = verifier.verify_request(headers).await?;
    if let Some(missing) = route.config.scopes.iter().find(|s| !claims.has_scope(s)) {
        return Err(AuthError::MissingScope(missing.clone()).into());
    }
    Ok(Some(claims))
}

/// The client's request body as the service gets it: cut off when it sends nothing for
/// `timeout` (tower-http's `TimeoutBody`), which the SDK then reads as the client's own
/// failure ([`RequestBodyError::Stalled`](sdk::transport::RequestBodyError)), as it reads
/// a body that breaks off. An empty body is left as it is, so a bodiless call can still be
/// retried.
fn client_body(body: Body, timeout: std::time::Duration) -> Body {
    use axum::body::HttpBody as _;
    use http_body_util::BodyExt as _;
    if body.is_end_stream() {
        return body;
    }
    let body = tower_http::timeout::TimeoutBody::new(timeout, body).map_err(|e| {
        if e.is::<tower_http::timeout::TimeoutError>() {
            sdk::BoxError::from(sdk::transport::RequestBodyError::Stalled)
        } else {
            e
        }
    });
    Body::new(body)
}
