//! WebSocket routes: the client's handshake goes to the service through the SDK's
//! pipeline like any GET (balanced, breaker, timeout to the answer, retried on another
//! instance when the connection cannot be made), and once the service has switched
//! protocols, so does the client, and the two connections are spliced: every frame
//! (text, binary, ping, pong, close with its code and reason) and every negotiated
//! extension crosses as the bytes it is, in both directions, with nothing answered on
//! either side's behalf. A service that refuses the upgrade is an HTTP answer to the
//! client (its status and body), not a socket that closes at once.
//!
//! Why splice bytes rather than relay parsed frames: a relay answers pings itself (so
//! each ping gets two pongs), must renegotiate subprotocols and extensions, and parses
//! every frame twice; a splice does none of that and keeps the handshake end to end
//! (`Sec-WebSocket-Key`/`-Accept`, `-Protocol`, `-Extensions` from the client and the
//! service themselves). The connection then lives until either side closes it, or the
//! client's connection idles past the server's idle timeout.

use http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::{error::GatewayError, metrics::RouteMetrics};

/// Takes the client's connection for switching, after checking the request is a WebSocket
/// handshake (426 if it is not one, so the client learns what the route wants).
pub(crate) fn take_upgrade(parts: &mut Parts) -> Result<OnUpgrade, GatewayError> {
    let has = |name: header::HeaderName, token: &str| {
        parts.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let handshake = parts.method == http::Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
        && parts.headers.contains_key(header::SEC_WEBSOCKET_KEY);
    if !handshake {
        let mut refusal = GatewayError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this route takes WebSocket connections (GET with Upgrade: websocket)",
        );
        refusal.upgrade_to("websocket");
        return Err(refusal);
    }
    parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        GatewayError::new(
            StatusCode::BAD_REQUEST,
            "this connection cannot switch protocols (use HTTP/1.1)",
        )
    })
}

/// Puts back what the service needs to see a handshake (`Connection` and `Upgrade` are
/// hop-by-hop, and were removed with the rest).
pub(crate) fn handshake_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Answers the client with the service's `101` and splices the two connections once both
/// have switched.
pub(crate) fn switch(
    client: OnUpgrade,
    upstream: OnUpgrade,
    service_headers: HeaderMap,
    metrics: &RouteMetrics,
) -> http::Response<sdk::transport::Body> {
    let open = metrics.websocket_opened();
    tokio::spawn(async move {
        let _open = open;
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(client), Ok(upstream)) => (client, upstream),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "a WebSocket connection did not switch");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "a WebSocket connection ended with an error");
        }
    });
    let mut response = http::Response::new(sdk::transport::Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = service_headers;
    handshake_headers(response.headers_mut());
    response
}
