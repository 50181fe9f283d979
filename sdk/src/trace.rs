//! W3C Trace Context: every request carries a `traceparent` header.
//!
//! The header is written per attempt, just before the request leaves, so cached answers and
//! refused calls pay nothing for it. A request that already has one (set by the caller, e.g.
//! propagated from an incoming request) keeps its trace id and flags. Otherwise, with the
//! `opentelemetry` feature and a `tracing-opentelemetry` layer installed, the trace of the
//! current span (the call's span, a child of the caller's) is continued, with that span as
//! the parent; else the call's own trace id is used, sampled, with a new parent id per
//! attempt. Ids come from a fast non-cryptographic generator, which is what the spec asks
//! for (random, not secret).

use http::{HeaderMap, HeaderName, HeaderValue};

/// The `traceparent` header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sets `traceparent` on `headers` for one outgoing attempt of the call `trace_id`.
/// `span`, or no span at all when no subscriber wants it.
///
/// A span no subscriber took still carries its metadata when tracing's `log` feature is on
/// (another crate in the build may turn it on, sqlx does), and then every enter and exit of
/// it asks the `log` crate whether it should print. The SDK enters its spans on every poll
/// of a call and of an attempt; a span that no one records should cost nothing there.
pub(crate) fn live(span: tracing::Span) -> tracing::Span {
    if span.is_disabled() {
        tracing::Span::none()
    } else {
        span
    }
}

/// Whether any subscriber may want a span at `level`: one atomic load, where building a
/// span only to find it disabled costs ~150 instructions (its fields, and the `log` check).
pub(crate) fn wanted(level: tracing::Level) -> bool {
    tracing::level_filters::LevelFilter::current() >= level
}

pub(crate) fn propagate(headers: &mut HeaderMap, trace_id: u128) {
    let given = match headers.is_empty() {
        true => None,
        false => headers.get(&TRACEPARENT).and_then(|v| parse(v.as_bytes())),
    };
    let value = match given {
        Some((trace_id, flags)) => format(trace_id, fastrand::u64(1..), flags),
        None => match current_span_context() {
            Some((trace_id, span_id, flags)) => format(trace_id, span_id, flags),
            None => format(trace_id, fastrand::u64(1..), 1),
        },
    };
    headers.insert(TRACEPARENT, value);
}

/// The OpenTelemetry context of the current `tracing` span: trace id, span id, flags.
#[cfg(feature = "opentelemetry")]
fn current_span_context() -> Option<(u128, u64, u8)> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| {
        (
            u128::from_be_bytes(span_context.trace_id().to_bytes()),
            u64::from_be_bytes(span_context.span_id().to_bytes()),
            span_context.trace_flags().to_u8(),
        )
    })
}

#[cfg(not(feature = "opentelemetry"))]
fn current_span_context() -> Option<(u128, u64, u8)> {
    None
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

/// Writes `bytes` into `out` as lowercase hex (two digits a byte), by hand: on every call,
/// where a `format!` would cost several times as much.
fn hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// Each byte's two hex digits: one lookup a byte instead of two.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// A 128-bit id as 32 lowercase hex digits, as W3C trace ids are written (and the SDK's
/// message ids).
///
/// ```
/// assert_eq!(&sdk::trace::hex_id(0xabc)[29..], b"abc");
/// ```
pub fn hex_id(id: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex(&mut out, &id.to_be_bytes());
    out
}

/// Any bytes as lowercase hex, two digits a byte (tokens, digests).
///
/// ```
/// assert_eq!(sdk::trace::hex_string(&[0x0a, 0xff]), "0aff");
/// ```
pub fn hex_string(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex(&mut out, bytes);
    // Only hex digits were written.
    String::from_utf8(out).unwrap_or_default()
}

fn format(trace_id: u128, span_id: u64, flags: u8) -> HeaderValue {
    let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
    buf[3..35].copy_from_slice(&hex_id(trace_id));
    hex(&mut buf[36..52], &span_id.to_be_bytes());
    hex(&mut buf[53..55], &[flags]);
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
        propagate(&mut headers, 0xabc);
        let first = headers[&TRACEPARENT].to_str().expect("ascii").to_owned();
        let (trace_id, flags) = parse(first.as_bytes()).expect("well formed");
        assert_eq!((trace_id, flags), (0xabc, 1));
        assert!(
            first.starts_with("00-00000000000000000000000000000abc-"),
            "{first}"
        );
        propagate(&mut headers, 0xdef);
        let second = headers[&TRACEPARENT].to_str().expect("ascii").to_owned();
        assert_eq!(
            parse(second.as_bytes()),
            Some((trace_id, 1)),
            "trace id kept"
        );
        assert_ne!(first[36..52], second[36..52], "new parent id");
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        propagate(&mut headers, 7);
        assert!(parse(headers[&TRACEPARENT].as_bytes()).is_some());
    }
}
