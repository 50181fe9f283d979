//! Path safety: ad-hoc paths are checked so a caller can never be steered to another host or
//! up the server's path tree, and path parameters are percent-encoded as exactly one segment.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value` as a single path segment.
///
/// `/`, `?`, `#`, `%` and every other reserved character are encoded, so the value can never
/// add a segment or start a query. A value that is exactly `.` or `..` is refused: RFC 3986
/// makes `%2E%2E` equivalent to `..`, so no encoding of it is safe from path normalisation.
///
/// ```
/// use sdk::path::encode_segment;
///
/// assert_eq!(encode_segment("42").unwrap(), "42");
/// assert_eq!(encode_segment("../admin").unwrap(), "..%2Fadmin");
/// assert_eq!(encode_segment("a/b").unwrap(), "a%2Fb");
/// assert_eq!(encode_segment("?x=1").unwrap(), "%3Fx%3D1");
/// assert!(encode_segment("..").is_err());
/// ```
pub fn encode_segment(value: &str) -> Result<Cow<'_, str>, PathError> {
    match value {
        "." | ".." => Err(PathError::DotSegment(value.to_owned())),
        _ => Ok(utf8_percent_encode(value, SEGMENT).into()),
    }
}

/// Why a path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path `{0}` must start with `/`")]
    NotRelative(String),
    /// The path is an absolute or scheme-relative URL (`http://...`, `//host/...`).
    #[error("path `{0}` names a host; only paths relative to the service are allowed")]
    NamesHost(String),
    /// The path contains a `.` or `..` segment (also when percent-encoded).
    #[error("path `{0}` contains a dot segment (`..` or `.`)")]
    DotSegment(String),
    /// The path contains a character that is not allowed in a URI path.
    #[error("path `{0}` contains a character not allowed in a URI (space, control, `\\`, `#`)")]
    BadCharacter(String),
}

/// Checks an ad-hoc path (with an optional query) before it is sent.
///
/// ```
/// use sdk::path::check_path;
///
/// assert!(check_path("/orders/123?expand=items").is_ok());
/// assert!(check_path("http://elsewhere/x").is_err());
/// assert!(check_path("//elsewhere/x").is_err());
/// assert!(check_path("/orders/../admin").is_err());
/// assert!(check_path("/orders/%2e%2E/admin").is_err());
/// ```
pub fn check_path(path_and_query: &str) -> Result<(), PathError> {
    let owned = || path_and_query.to_owned();
    if path_and_query.starts_with("//") || path_and_query.starts_with("/\\") {
        return Err(PathError::NamesHost(owned()));
    }
    if !path_and_query.starts_with('/') {
        return if path_and_query.contains("://") {
            Err(PathError::NamesHost(owned()))
        } else {
            Err(PathError::NotRelative(owned()))
        };
    }
    if path_and_query
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'\\' || b == b'#' || b >= 0x80)
    {
        return Err(PathError::BadCharacter(owned()));
    }
    let path = path_and_query.split('?').next().unwrap_or_default();
    for segment in path.split('/') {
        if is_dot_segment(segment) {
            return Err(PathError::DotSegment(owned()));
        }
    }
    Ok(())
}

fn is_dot_segment(segment: &str) -> bool {
    if segment.len() > 6 || !segment.contains(['.', '%']) {
        return false;
    }
    let lowered = segment.to_ascii_lowercase();
    let decoded = lowered.replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_stay_one_segment() {
        for hostile in [
            "../admin", "a/b", "?x=1", "#frag", "%2e%2e", "a b", "ü", "a\\b",
        ] {
            let encoded = encode_segment(hostile).expect("encodable");
            assert!(!encoded.contains('/'), "{hostile} -> {encoded}");
            assert!(!encoded.contains('?'), "{hostile} -> {encoded}");
            assert!(!encoded.contains('#'), "{hostile} -> {encoded}");
            assert!(encoded != "." && encoded != "..", "{hostile} -> {encoded}");
            let path = format!("/users/{encoded}");
            assert_eq!(check_path(&path), Ok(()), "{path}");
            assert_eq!(path.matches('/').count(), 2, "{path}");
        }
        assert!(encode_segment("..").is_err());
        assert!(encode_segment(".").is_err());
    }

    #[test]
    fn refuses_paths_that_leave_the_service() {
        for bad in [
            "http://elsewhere/x",
            "https://elsewhere",
            "//elsewhere/x",
            "/\\elsewhere",
            "elsewhere/x",
            "/a/../b",
            "/a/./b",
            "/a/%2E%2e/b",
            "/..",
            "/a b",
            "/a\r\nHost: x",
            "/a#frag",
        ] {
            assert!(check_path(bad).is_err(), "{bad} was accepted");
        }
        for good in ["/", "/a", "/a/b?c=d/../e", "/a..b/c", "/users/%2E%2E%2Fx"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
    }
}
