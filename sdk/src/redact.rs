//! Keeping secrets out of logs and `Debug` output.
//!
//! Headers that carry credentials are marked sensitive (`HeaderValue::set_sensitive`, which
//! `http` itself honours in its `Debug`), and every `Debug` impl in this crate prints header
//! maps through [`RedactedHeaders`], which prints `[redacted]` for them.

use std::fmt;

use http::{HeaderMap, HeaderName};

/// Header names whose values are always redacted.
pub(crate) const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// Whether a header carries a secret and must never be printed.
pub fn is_secret_header(name: &HeaderName) -> bool {
    SECRET_HEADERS.contains(&name.as_str())
}

/// Marks every secret header in `headers` as sensitive, so `http`'s own `Debug` hides it too:
/// the built-in ones and the `extra` names the user gave (`[sdk] sensitive_headers`).
pub(crate) fn mark_sensitive(headers: &mut HeaderMap, extra: &[HeaderName]) {
    for (name, value) in headers.iter_mut() {
        if is_secret_header(name) || extra.contains(name) {
            value.set_sensitive(true);
        }
    }
}

/// `Debug` for a header map that prints `[redacted]` for secret or sensitive values.
pub(crate) struct RedactedHeaders<'a>(pub(crate) &'a HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if value.is_sensitive() || is_secret_header(name) {
                map.entry(&name.as_str(), &"[redacted]");
            } else {
                map.entry(&name.as_str(), &value);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_never_print() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer hunter2".parse().expect("valid"));
        headers.insert("x-request-id", "abc".parse().expect("valid"));
        let printed = format!("{:?}", RedactedHeaders(&headers));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("abc"), "{printed}");
        headers.insert("x-session", "s-42".parse().expect("valid"));
        mark_sensitive(&mut headers, &[HeaderName::from_static("x-session")]);
        assert!(!format!("{headers:?}").contains("hunter2"));
        let printed = format!("{:?}", RedactedHeaders(&headers));
        assert!(
            !printed.contains("s-42"),
            "a name the user added: {printed}"
        );
    }
}
