//! The headers that cross the gateway: hop-by-hop ones stay behind (RFC 9110, 7.6.1), the
//! `x-forwarded-*` set and a request id are added, and the trace context goes on (the SDK
//! continues an incoming `traceparent` with a new parent id and keeps `tracestate`).

use http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::clients::{Origin, X_FORWARDED_FOR};

/// `x-request-id`: kept from the client when it is a sane token, made here otherwise, and
/// sent back on the answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-forwarded-proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection, never the message (plus `host`, which the SDK
/// sets from the instance it picks).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, and those the `Connection` header names.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("connection", "keep-alive, x-secret-hop".parse().expect("a value"));
/// headers.insert("x-secret-hop", "1".parse().expect("a value"));
/// headers.insert("accept", "text/plain".parse().expect("a value"));
/// sdk_gateway::forward::strip_hop_by_hop(&mut headers);
/// assert_eq!(headers.len(), 1);
/// ```
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Prepares a request's headers for the service: hop-by-hop and `host` removed, the
/// `x-forwarded-*` set (extended when the peer is a trusted proxy, replaced otherwise), and
/// the request id set. Returns the request id.
pub fn to_upstream(headers: &mut HeaderMap, origin: &Origin, scheme: &'static str) -> HeaderValue {
    strip_hop_by_hop(headers);
    let host = headers.remove(header::HOST);
    let peer = HeaderValue::from_str(&origin.peer.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    if origin.via_trusted_proxy {
        let before: Vec<&[u8]> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let mut joined = before.join(&b", "[..]);
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(peer.as_bytes());
        let value = HeaderValue::from_bytes(&joined).unwrap_or(peer);
        headers.insert(X_FORWARDED_FOR, value);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
        }
        if let (false, Some(host)) = (headers.contains_key(&X_FORWARDED_HOST), host) {
            headers.insert(X_FORWARDED_HOST, host);
        }
    } else {
        headers.insert(X_FORWARDED_FOR, peer);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
        match host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
    request_id(headers)
}

/// The request's id: the client's `x-request-id` when it is 1 to 128 visible ASCII
/// characters, a new random one otherwise (set on `headers` either way).
fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    let sane = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
    };
    if let Some(id) = headers.get(&X_REQUEST_ID).filter(|v| sane(v)) {
        return id.clone();
    }
    let id = sdk::trace::hex_id(fastrand::u128(1..));
    let id = HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"));
    headers.insert(X_REQUEST_ID, id.clone());
    id
}
