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

/// Whether `name` is hop-by-hop (one of the standard ones).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|hop| hop == name)
}

/// The names the `Connection` header lists beside the standard tokens, which are
/// hop-by-hop too (none, without allocating, for the usual `keep-alive`, `close`,
/// `upgrade`).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !["keep-alive", "close", "upgrade"]
                .iter()
                .any(|s| t.eq_ignore_ascii_case(s))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect()
}

/// Removes the hop-by-hop headers, and those the `Connection` header names (looking
/// first, so an answer with none of them, the usual case, is not touched).
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
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    for name in connection_named(headers).iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The headers for the service, made from the client's in place: hop-by-hop ones, `host`
/// and `dropped` left behind, the `x-forwarded-*` set extended when the peer is a trusted
/// proxy and replaced otherwise, and the request id set. Returns them and the id.
///
/// In place, because the client's map is hyper's, made with room to spare (hyper reuses the
/// connection's last answer's): a new map cost two allocations and a hash of every header
/// again, and a request rarely carries anything to remove.
///
/// ```
/// use sdk_gateway::{clients::TrustedProxies, forward};
/// let mut incoming = http::HeaderMap::new();
/// incoming.insert("host", "api.example.com".parse().expect("a value"));
/// incoming.insert("x-forwarded-for", "6.6.6.6".parse().expect("a value"));
/// incoming.insert("te", "trailers".parse().expect("a value"));
/// let origin = TrustedProxies::default().origin("203.0.113.5:40000".parse().expect("an address"), &incoming);
/// let (headers, id) = forward::to_upstream(incoming, &origin, "https", &[]);
/// assert_eq!(headers["x-forwarded-for"], "203.0.113.5");
/// assert_eq!(headers["x-forwarded-host"], "api.example.com");
/// assert_eq!(headers["x-forwarded-proto"], "https");
/// assert_eq!(headers["x-request-id"], id);
/// assert!(headers.get("te").is_none() && headers.get("host").is_none());
/// ```
pub fn to_upstream(
    mut headers: HeaderMap,
    origin: &Origin,
    scheme: &'static str,
    dropped: &[HeaderName],
) -> (HeaderMap, HeaderValue) {
    // One look over the names (comparisons, no hashing); removals only for what is there.
    if headers
        .keys()
        .any(|name| is_hop_by_hop(name) || dropped.contains(name))
    {
        let named = connection_named(&headers);
        for name in named.iter().chain(HOP_BY_HOP.iter()).chain(dropped) {
            headers.remove(name);
        }
    }
    let host = headers.remove(header::HOST);
    let trusted = origin.via_trusted_proxy;
    let peer = ip_value(origin.peer.ip());
    let forwarded = match trusted && headers.contains_key(X_FORWARDED_FOR) {
        true => {
            let mut joined = headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect::<Vec<_>>()
                .join(&b", "[..]);
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or(peer)
        }
        false => peer,
    };
    let id = headers
        .remove(X_REQUEST_ID)
        .filter(is_sane_id)
        .unwrap_or_else(new_request_id);
    // Room for the four set here: a full map grows, rehashing every header. (The SDK adds
    // its own to each attempt's copy of the map, which keeps no spare room of this one's.)
    headers.reserve(4);
    headers.insert(X_FORWARDED_FOR, forwarded);
    let proto = HeaderValue::from_static(scheme);
    match trusted {
        true => {
            headers.entry(X_FORWARDED_PROTO).or_insert(proto);
            if let Some(host) = host {
                headers.entry(X_FORWARDED_HOST).or_insert(host);
            }
        }
        false => {
            headers.insert(X_FORWARDED_PROTO, proto);
            match host {
                Some(host) => headers.insert(X_FORWARDED_HOST, host),
                None => headers.remove(X_FORWARDED_HOST),
            };
        }
    }
    headers.insert(X_REQUEST_ID, id.clone());
    (headers, id)
}

/// A client's request id is kept when it is 1 to 128 visible ASCII characters.
fn is_sane_id(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
}

/// 32 random hex digits.
fn new_request_id() -> HeaderValue {
    shared_value(sdk::trace::hex_id(fastrand::u128(1..)), 32)
}

/// The first `len` bytes of `text` as a header value whose clones share it. A value made by
/// copying bytes is a plain vector: its first clone (the SDK copies a request's headers
/// for each attempt) allocates again to share it.
fn shared_value<const N: usize>(text: [u8; N], len: usize) -> HeaderValue {
    let bytes = bytes::Bytes::from_owner(text).slice(..len.min(N));
    HeaderValue::from_maybe_shared(bytes).unwrap_or(HeaderValue::from_static("unknown"))
}

/// An address as a header value (IPv4 written by hand: this runs on every request).
fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    let std::net::IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = match octet {
            0..=9 => 2,
            10..=99 => 1,
            _ => 0,
        };
        for digit in &digits[skip..] {
            text[len] = b'0' + digit;
            len += 1;
        }
    }
    shared_value(text, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::TrustedProxies;

    fn incoming(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn forwarded(trusted: bool, pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let headers = incoming(pairs);
        let nets = match trusted {
            true => vec!["10.0.0.0/8".parse().expect("a net")],
            false => Vec::new(),
        };
        let peer = "10.1.2.3:5000".parse().expect("an address");
        let origin = TrustedProxies::new(nets).origin(peer, &headers);
        let dropped = [HeaderName::from_static("x-user-id")];
        to_upstream(headers, &origin, "https", &dropped).0
    }

    #[test]
    fn a_trusted_proxys_forwarding_is_extended_and_kept() {
        let headers = forwarded(
            true,
            &[
                ("host", "inner.example"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "api.example"),
            ],
        );
        let all = |name| headers.get_all(name).iter().collect::<Vec<_>>();
        assert_eq!(
            all("x-forwarded-for"),
            ["203.0.113.9, 198.51.100.7, 10.1.2.3"]
        );
        assert_eq!(all("x-forwarded-proto"), ["http"]);
        assert_eq!(all("x-forwarded-host"), ["api.example"]);
    }

    #[test]
    fn an_untrusted_clients_forwarding_is_replaced_or_dropped() {
        let headers = forwarded(
            false,
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "forged.example"),
                ("x-user-id", "someone-else"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("te", "trailers"),
                ("x-request-id", "bad id with spaces"),
                ("accept", "application/json"),
            ],
        );
        assert_eq!(headers["x-forwarded-for"], "10.1.2.3");
        assert_eq!(headers["x-forwarded-proto"], "https");
        // No `Host` to forward: the client's own claim is not kept either.
        assert!(headers.get("x-forwarded-host").is_none());
        for gone in ["x-user-id", "connection", "x-hop", "te", "host"] {
            assert!(headers.get(gone).is_none(), "{gone}");
        }
        let id = &headers["x-request-id"];
        assert!(id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(headers["accept"], "application/json");
        // A copy (one per attempt) shares the values made here.
        assert_eq!(headers.clone()["x-request-id"], id);
    }
}
