//! Which outcomes are worth another attempt.

use std::time::{Duration, SystemTime};

use http::{header::RETRY_AFTER, HeaderMap, StatusCode};

use crate::{
    box_error::BoxError,
    outcome::{ErrorClass, StatusClass},
    request::ServiceRequest,
    response::ServiceResponse,
};

/// The verdict on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Success, or a failure another attempt would not fix.
    Done,
    /// Worth retrying; the server may have said when (`Retry-After`).
    Retry { after: Option<Duration> },
}

/// Retry connect errors always (nothing was sent), other transport errors and timeouts for
/// idempotent requests, the configured statuses (502/503/504) for idempotent requests, and
/// 429 only when the server said when (`Retry-After`). Never an open breaker, an empty
/// instance set, an oversized body, or another 4xx.
pub(crate) fn classify(
    request: &ServiceRequest,
    outcome: &Result<ServiceResponse, BoxError>,
    retry_statuses: &[StatusCode],
    retry_non_idempotent: bool,
) -> Verdict {
    let idempotent = retry_non_idempotent || request.is_idempotent();
    match outcome {
        Ok(response) => {
            // `Retry-After` is read only for an answer that may be retried (a header lookup
            // is most of this function's cost on the success path every call takes).
            let status = response.status();
            if !idempotent {
                return Verdict::Done;
            }
            if response.class() == StatusClass::TooManyRequests {
                return match retry_after(response.headers()) {
                    Some(after) => Verdict::Retry { after: Some(after) },
                    None => Verdict::Done,
                };
            }
            match retry_statuses.contains(&status) {
                true => Verdict::Retry {
                    after: retry_after(response.headers()),
                },
                false => Verdict::Done,
            }
        }
        Err(err) => {
            let class = ErrorClass::of(err.as_ref());
            if !class.retry().now() || request.options().idempotent == Some(false) {
                return Verdict::Done;
            }
            // A connection never made sent nothing: safe to retry whatever the method.
            if class == ErrorClass::Connect || idempotent {
                Verdict::Retry { after: None }
            } else {
                Verdict::Done
            }
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (one in the past is zero): the pipeline's
/// retries and the event bus's webhook schedule both read it here.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().expect("valid"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(later).parse().expect("valid"),
        );
        let parsed = retry_after(&h).expect("date form");
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        h.insert(RETRY_AFTER, "soon".parse().expect("valid"));
        assert_eq!(retry_after(&h), None);
    }
}
