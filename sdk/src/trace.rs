//! W3C Trace Context: every request carries a `traceparent` header.
//!
//! A request that already has one (set by the caller, e.g. propagated from an incoming
//! request) keeps its trace id and flags and gets a new parent id for this call; otherwise a
//! new trace is started, sampled. Ids come from a fast non-cryptographic generator, which is
//! what the spec asks for (random, not secret).

use http::{HeaderMap, HeaderName, HeaderValue};

/// The `traceparent` header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sets `traceparent` on `headers` for one outgoing call.
pub(crate) fn propagate(headers: &mut HeaderMap) {
    let (trace_id, flags) = headers
        .get(&TRACEPARENT)
        .and_then(|v| parse(v.as_bytes()))
        .unwrap_or_else(|| (nonzero_u128(), 1));
    let value = format(trace_id, nonzero_u64(), flags);
    headers.insert(TRACEPARENT, value);
}

fn nonzero_u128() -> u128 {
    fastrand::u128(1..)
}

fn nonzero_u64() -> u64 {
    fastrand::u64(1..)
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`, returning the trace id and flags.
fn parse(value: &[u8]) -> Option<(u128, u8)> {
    if value.len() != 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let trace_id = u128::from_str_radix(&text[3..35], 16)
        .ok()
        .filter(|id| *id != 0)?;
    u64::from_str_radix(&text[36..52], 16)
        .ok()
        .filter(|id| *id != 0)?;
    let flags = u8::from_str_radix(&text[53..55], 16).ok()?;
    Some((trace_id, flags))
}

fn format(trace_id: u128, span_id: u64, flags: u8) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 55];
    buf[..3].copy_from_slice(b"00-");
    for i in 0..32 {
        buf[3 + i] = HEX[((trace_id >> (124 - 4 * i)) & 0xf) as usize];
    }
    buf[35] = b'-';
    for i in 0..16 {
        buf[36 + i] = HEX[((span_id >> (60 - 4 * i)) & 0xf) as usize];
    }
    buf[52] = b'-';
    buf[53] = HEX[(flags >> 4) as usize];
    buf[54] = HEX[(flags & 0xf) as usize];
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static(
        "00-00000000000000000000000000000001-0000000000000001-01",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_a_trace_or_continues_one() {
        let mut headers = HeaderMap::new();
        propagate(&mut headers);
        let first = headers[&TRACEPARENT].to_str().expect("ascii").to_owned();
        let (trace_id, flags) = parse(first.as_bytes()).expect("well formed");
        assert_eq!(flags, 1);
        propagate(&mut headers);
        let second = headers[&TRACEPARENT].to_str().expect("ascii").to_owned();
        assert_eq!(
            parse(second.as_bytes()),
            Some((trace_id, 1)),
            "trace id kept"
        );
        assert_ne!(first[36..52], second[36..52], "new parent id");
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        propagate(&mut headers);
        assert!(parse(headers[&TRACEPARENT].as_bytes()).is_some());
    }
}
