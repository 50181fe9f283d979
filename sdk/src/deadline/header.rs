//! The time a call has left, as it travels on the wire.
//!
//! Every attempt the SDK sends carries [`DEADLINE_HEADER`] (`x-request-deadline`): the
//! milliseconds its caller will still wait for it (the earlier of the attempt timeout and
//! the call's deadline), counted when the attempt leaves. A relative time, not a
//! timestamp, so the two machines' clocks need not agree; what the request spends in
//! flight is not subtracted (under a millisecond on a LAN, rounded down here).
//!
//! On the way in, [`remaining`] also reads gRPC's `grpc-timeout` (`250m`, `3S`, ...), so a
//! service behind a gRPC-aware proxy inherits its deadline the same way.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header an outgoing call's remaining time travels in, in whole milliseconds.
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-request-deadline");

/// gRPC's timeout header (`<up to 8 digits><H|M|S|m|u|n>`), read on the way in.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The largest time a header may claim (a day): anything longer is taken as a day, so a
/// caller cannot make a handler wait for years.
const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// The time left that `headers` carry: [`DEADLINE_HEADER`], else `grpc-timeout`; `None`
/// when neither is there or neither parses (a bad value is ignored, not obeyed).
///
/// ```
/// use std::time::Duration;
/// use sdk::deadline::{remaining, DEADLINE_HEADER, GRPC_TIMEOUT};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert(DEADLINE_HEADER, http::HeaderValue::from_static("250"));
/// assert_eq!(remaining(&headers), Some(Duration::from_millis(250)));
///
/// let mut grpc = http::HeaderMap::new();
/// grpc.insert(GRPC_TIMEOUT, http::HeaderValue::from_static("3S"));
/// assert_eq!(remaining(&grpc), Some(Duration::from_secs(3)));
/// ```
pub fn remaining(headers: &HeaderMap) -> Option<Duration> {
    let (deadline, grpc) = match headers.keys_len() <= SCANNED_UP_TO {
        true => scan(headers),
        false => (headers.get(&DEADLINE_HEADER), headers.get(&GRPC_TIMEOUT)),
    };
    match (deadline, grpc) {
        (Some(value), _) => millis(value.as_bytes()),
        (None, Some(value)) => grpc_timeout(value.as_bytes()),
        (None, None) => None,
    }
}

/// Up to how many header names [`remaining`] compares one by one instead of looking both
/// headers up: most requests carry neither, and two lookups of a name that is not there
/// hash it twice (~290 instructions a gateway request, callgrind 2026-12-07), where a look
/// over a few names compares their lengths.
const SCANNED_UP_TO: usize = 16;

/// The first value of each of the two deadline headers, in one look over the names.
fn scan(headers: &HeaderMap) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
    let (mut deadline, mut grpc) = (None, None);
    for (name, value) in headers {
        if deadline.is_none() && *name == DEADLINE_HEADER {
            deadline = Some(value);
        } else if grpc.is_none() && *name == GRPC_TIMEOUT {
            grpc = Some(value);
        }
    }
    (deadline, grpc)
}

/// Whole milliseconds, digits only.
fn millis(value: &[u8]) -> Option<Duration> {
    let digits = std::str::from_utf8(value).ok()?.trim();
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(ms).min(LONGEST))
}

/// gRPC's `TimeoutValue TimeoutUnit`: at most 8 digits, then one of `HMSmun`.
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let duration = match unit {
        b'H' => Duration::from_secs(amount.saturating_mul(3600)),
        b'M' => Duration::from_secs(amount.saturating_mul(60)),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    };
    Some(duration.min(LONGEST))
}

/// Sets [`DEADLINE_HEADER`] to `left`, in whole milliseconds rounded down (a hop never
/// believes it has more time than its caller gives it).
pub(crate) fn stamp(headers: &mut HeaderMap, left: Duration) {
    let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
    headers.insert(DEADLINE_HEADER, value(ms));
}

thread_local! {
    /// The value this thread wrote last. Calls in a row under one timeout mostly tell the
    /// next hop the same whole milliseconds, and a clone is a reference count where a new
    /// value is a formatting, an allocation and a free (~200 instructions a call).
    static LAST: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((0, HeaderValue::from_static("0"))) };
}

/// `ms` as a header value, the last one again when it is the same.
fn value(ms: u64) -> HeaderValue {
    LAST.with(|last| {
        // Never borrowed already (nothing here calls back into it); a new value is right too.
        let Ok(mut last) = last.try_borrow_mut() else {
            return HeaderValue::from(ms);
        };
        if last.0 != ms {
            *last = (ms, HeaderValue::from(ms));
        }
        last.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn milliseconds_parse_and_nonsense_is_ignored() {
        let ms = |v| remaining(&with(DEADLINE_HEADER, v));
        assert_eq!(ms("0"), Some(Duration::ZERO));
        assert_eq!(ms(" 1500 "), Some(Duration::from_millis(1500)));
        assert_eq!(ms("999999999999"), Some(LONGEST));
        for bad in ["", "-5", "1.5", "5s", "abc", "1234567890123"] {
            assert_eq!(ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let grpc = |v| remaining(&with(GRPC_TIMEOUT, v));
        assert_eq!(grpc("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(grpc("1M"), Some(Duration::from_secs(60)));
        assert_eq!(grpc("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc("7u"), Some(Duration::from_micros(7)));
        assert_eq!(grpc("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(grpc("99999999H"), Some(LONGEST));
        for bad in ["m", "123456789m", "5x", "5", "-1S"] {
            assert_eq!(grpc(bad), None, "{bad}");
        }
    }

    #[test]
    fn few_headers_or_many_read_alike() {
        for extra in [0, 3, SCANNED_UP_TO, SCANNED_UP_TO + 5] {
            let mut headers = HeaderMap::new();
            for i in 0..extra {
                let name = HeaderName::from_bytes(format!("x-other-{i}").as_bytes()).expect("name");
                headers.insert(name, HeaderValue::from_static("7"));
            }
            assert_eq!(remaining(&headers), None, "{extra} others");
            headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("3S"));
            assert_eq!(remaining(&headers), Some(Duration::from_secs(3)), "{extra}");
            headers.append(DEADLINE_HEADER, HeaderValue::from_static("250"));
            headers.append(DEADLINE_HEADER, HeaderValue::from_static("900"));
            // Ours wins, and of two values the first, as `HeaderMap::get` reads them.
            assert_eq!(
                remaining(&headers),
                Some(Duration::from_millis(250)),
                "{extra}"
            );
        }
    }

    #[test]
    fn our_header_wins_over_grpc_and_stamps_round_down() {
        let mut headers = with(GRPC_TIMEOUT, "1S");
        stamp(&mut headers, Duration::from_micros(2_999_900));
        assert_eq!(headers[DEADLINE_HEADER], "2999");
        assert_eq!(remaining(&headers), Some(Duration::from_millis(2999)));
    }

    #[test]
    fn the_remembered_value_is_only_used_for_the_same_milliseconds() {
        let mut headers = HeaderMap::new();
        for (left, expected) in [(250, "250"), (250, "250"), (0, "0"), (7, "7"), (250, "250")] {
            stamp(&mut headers, Duration::from_millis(left));
            assert_eq!(headers[DEADLINE_HEADER], expected);
        }
    }
}
