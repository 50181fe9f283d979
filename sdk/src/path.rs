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
/// An empty value is refused too: `/users/<id>` with `id = ""` would be `/users/`, the
/// collection, and a `DELETE` there is not what the caller meant.
///
/// ```
/// use sdk::path::encode_segment;
///
/// assert_eq!(encode_segment("42").unwrap(), "42");
/// assert_eq!(encode_segment("../admin").unwrap(), "..%2Fadmin");
/// assert_eq!(encode_segment("a/b").unwrap(), "a%2Fb");
/// assert_eq!(encode_segment("?x=1").unwrap(), "%3Fx%3D1");
/// assert!(encode_segment("..").is_err());
/// assert!(encode_segment("").is_err());
/// ```
pub fn encode_segment(value: &str) -> Result<Cow<'_, str>, PathError> {
    match value {
        "" => Err(PathError::EmptySegment),
        "." | ".." => Err(PathError::DotSegment(value.to_owned())),
        _ => Ok(utf8_percent_encode(value, SEGMENT).into()),
    }
}

/// Appends `query` (a struct, a map or pairs, as `serde_urlencoded` takes them; `None`
/// values left out) to the query of `path`, encoding straight into its buffer: the one place
/// a query is written, for ad-hoc `.query(...)` and generated clients' `#[query]` arguments.
/// On error, `path` is left as it was.
pub(crate) fn append_query<T: serde::Serialize + ?Sized>(
    path: &mut String,
    query: &T,
) -> Result<(), serde_urlencoded::ser::Error> {
    let before = path.len();
    let had_query = path.contains('?');
    if !had_query {
        path.push('?');
    }
    let start = path.find('?').map_or(path.len(), |q| q + 1);
    let filled = path.len();
    // form_urlencoded writes the `&` between pairs, after pairs already there too.
    let mut encoder = form_urlencoded::Serializer::for_suffix(std::mem::take(path), start);
    let result = query
        .serialize(serde_urlencoded::Serializer::new(&mut encoder))
        .map(drop);
    *path = encoder.finish();
    match &result {
        Err(_) => path.truncate(before),
        // Nothing to add (every value `None`): no dangling `?`.
        Ok(()) if !had_query && path.len() == filled => path.truncate(before),
        Ok(()) => {}
    }
    result
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
    /// A path parameter is empty (it would name the parent resource).
    #[error("an empty value would change the route (`/users/<id>` would become `/users/`)")]
    EmptySegment,
    /// The path contains a character that is not allowed in a URI path.
    #[error("path `{0}` contains a character not allowed in a URI (space, control, non-ASCII, or one of \\ # \" < > `); percent-encode it")]
    BadCharacter(String),
    /// A segment of a path from an untrusted client that some upstream could read as
    /// something else once decoded ([`check_untrusted_path`]).
    #[error("path `{path}` is ambiguous: a segment holds {reason}")]
    Ambiguous {
        /// The path part (never the query).
        path: String,
        /// What the segment holds.
        reason: &'static str,
    },
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
    let bytes = path_and_query.as_bytes();
    // Errors show the path, never the query: its values may be tokens or personal data.
    let owned = || match path_and_query.split_once('?') {
        Some((path, _)) => format!("{path}?[query not shown]"),
        None => path_and_query.to_owned(),
    };
    match bytes {
        [b'/', b'/' | b'\\', ..] => return Err(PathError::NamesHost(owned())),
        [b'/', ..] => {}
        _ if path_and_query.contains("://") => return Err(PathError::NamesHost(owned())),
        _ => return Err(PathError::NotRelative(owned())),
    }
    // One pass: characters everywhere, dot segments in the path part only.
    let mut segment_start = 1;
    let mut in_query = false;
    for (i, &b) in bytes.iter().enumerate() {
        match CLASS[usize::from(b)] {
            PLAIN => continue,
            BAD => return Err(PathError::BadCharacter(owned())),
            _ => {}
        }
        if !in_query && (b == b'/' || b == b'?') {
            if i > 0 && is_dot_segment(&bytes[segment_start..i]) {
                return Err(PathError::DotSegment(owned()));
            }
            segment_start = i + 1;
            in_query = b == b'?';
        }
    }
    if !in_query && is_dot_segment(&bytes[segment_start.min(bytes.len())..]) {
        return Err(PathError::DotSegment(owned()));
    }
    Ok(())
}

/// Checks a path that came from an untrusted client and goes on to a service behind this
/// one (the gateway's forwarding), judging it as every upstream may decode it.
///
/// Beyond [`check_path`], each segment of the path part is percent-decoded again and again
/// (a proxy, a framework and an application server may each decode once) and refused when
/// any of its readings:
///
/// - holds a `/` or a `\`: an encoded separator (`..%2f..`, `%5c`) that an upstream which
///   decodes before routing (nginx with a URI in `proxy_pass`, IIS, Tomcat with encoded
///   slashes allowed) reads as more segments;
/// - is a dot segment in any spelling: `%2e%2e`, double-encoded `%252e%252e`, or with
///   Tomcat's path parameters (`..;x=y`, `.;`);
/// - holds a NUL, or is not UTF-8 (overlong forms such as `%c0%ae` are the old way to spell
///   a dot or a slash past a decoder).
///
/// Apache refuses encoded slashes by default (`AllowEncodedSlashes Off`) and Spring
/// Security's `StrictHttpFirewall` refuses encoded slashes, backslashes, periods and `;`;
/// this is the same judgement, made once, for every upstream at once.
///
/// ```
/// use sdk::path::check_untrusted_path;
///
/// assert!(check_untrusted_path("/users/42?q=a%2Fb").is_ok());
/// assert!(check_untrusted_path("/files/report%20v2.pdf").is_ok());
/// assert!(check_untrusted_path("/api/..%2fusers%2f42").is_err());
/// assert!(check_untrusted_path("/api/%252e%252e/admin").is_err());
/// assert!(check_untrusted_path("/api/..;/admin").is_err());
/// assert!(check_untrusted_path("/api/a%5cb").is_err());
/// ```
pub fn check_untrusted_path(path_and_query: &str) -> Result<(), PathError> {
    check_path(path_and_query)?;
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path);
    // Most paths have no `%` and no `;`: only the dot segment rule applies, already checked.
    if !path.bytes().any(|b| b == b'%' || b == b';') {
        return Ok(());
    }
    let refused = |reason| PathError::Ambiguous {
        path: path.to_owned(),
        reason,
    };
    for segment in path.split('/').skip(1) {
        let mut reading = Cow::Borrowed(segment.as_bytes());
        let mut decodes = 0;
        loop {
            judge_reading(&reading).map_err(refused)?;
            let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(&reading).into();
            let decoded = match decoded {
                Cow::Borrowed(_) => break, // nothing left to decode
                Cow::Owned(decoded) => decoded,
            };
            if decodes == MAX_DECODES {
                return Err(refused("encoded more times than any upstream decodes"));
            }
            reading = Cow::Owned(decoded);
            decodes += 1;
        }
    }
    Ok(())
}

/// How many times a segment is decoded: a proxy, a framework and an application each once.
const MAX_DECODES: usize = 3;

/// The segment without Tomcat's path parameters (`..;jsessionid=x` is `..` there).
fn without_path_params(segment: &[u8]) -> &[u8] {
    match segment.iter().position(|&b| b == b';') {
        Some(at) => &segment[..at],
        None => segment,
    }
}

/// Why one reading of a segment is ambiguous, if it is.
fn judge_reading(reading: &[u8]) -> Result<(), &'static str> {
    if is_dot_segment(without_path_params(reading)) {
        return Err("a dot segment once decoded");
    }
    if reading.iter().any(|&b| matches!(b, b'/' | b'\\')) {
        return Err("an encoded `/` or `\\`");
    }
    if reading.contains(&0) || std::str::from_utf8(reading).is_err() {
        return Err("a NUL or bytes that are not UTF-8 once decoded");
    }
    Ok(())
}

const PLAIN: u8 = 0;
const BAD: u8 = 1;
const SEPARATOR: u8 = 2;

/// Byte classes for [`check_path`]: controls, space, DEL, non-ASCII, `\\`, `#`, and the
/// characters `http`'s URI parser refuses in a path or query (`"`, `<`, `>`, `` ` ``) are bad,
/// so a checked path always parses; `/` and `?` end a segment.
const CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        if b <= 0x20 || b >= 0x7f {
            class[b] = BAD;
        }
        b += 1;
    }
    let mut i = 0;
    let bad = b"\\#\"<>`";
    while i < bad.len() {
        class[bad[i] as usize] = BAD;
        i += 1;
    }
    class[b'/' as usize] = SEPARATOR;
    class[b'?' as usize] = SEPARATOR;
    class
};

/// `.` or `..`, also percent-encoded (`%2e`, `%2E`).
fn is_dot_segment(segment: &[u8]) -> bool {
    if !matches!(segment.first(), Some(b'.' | b'%')) {
        return false;
    }
    fn dots(s: &[u8]) -> Option<usize> {
        match s {
            [] => Some(0),
            [b'.', rest @ ..] => dots(rest).map(|n| n + 1),
            [b'%', b'2', b'e' | b'E', rest @ ..] => dots(rest).map(|n| n + 1),
            _ => None,
        }
    }
    !segment.is_empty() && segment.len() <= 6 && matches!(dots(segment), Some(1 | 2))
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
            "/a<b>",
            "/a?q=\"x\"",
            "/a`b",
        ] {
            assert!(check_path(bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "/",
            "/a",
            "/a/b?c=d/../e",
            "/a..b/c",
            "/users/%2E%2E%2Fx",
            "/a{b}|c^d?e={f}&g=|",
        ] {
            assert_eq!(check_path(good), Ok(()), "{good}");
            assert!(
                http::uri::PathAndQuery::try_from(good).is_ok(),
                "a checked path always parses: {good}"
            );
        }
    }

    #[test]
    fn untrusted_paths_are_judged_as_any_upstream_may_decode_them() {
        for bad in [
            "/api/n/..%2fusers%2f42",
            "/api/n/..%2Fusers",
            "/api/n/%2e%2e%2fusers",
            "/api/n/%2E%2E/users",
            "/api/n/%252e%252e/users",
            "/api/n/%25252e%25252e/users",
            "/api/n/..;/users",
            "/api/n/..;jsessionid=1/users",
            "/api/n/.;/users",
            "/api/n/a%5cb",
            "/api/n/a%5C..%5Cb",
            "/api/n/a%252fb",
            "/api/n/a%00b",
            "/api/n/%c0%ae%c0%ae/users",
            "/api/n/%c0%af",
            "/api/n/a%2525252fb",
            "/a/../b",
            "//elsewhere",
        ] {
            assert!(check_untrusted_path(bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "/",
            "/users/42",
            "/users/42?next=..%2f..%2fadmin",
            "/files/report%20v2.pdf",
            "/a..b/c%2e",
            "/a;b/c",
            "/100%25",
            "/caf%C3%A9",
            "/a%zz",
        ] {
            assert_eq!(check_untrusted_path(good), Ok(()), "{good}");
        }
        let error = check_untrusted_path("/n/..%2fusers?token=secret").expect_err("refused");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn queries_are_appended_in_place() {
        let mut path = "/users".to_owned();
        append_query(&mut path, &[("limit", "10")]).expect("encodes");
        append_query(&mut path, &[("tag", "a b&c")]).expect("encodes");
        assert_eq!(path, "/users?limit=10&tag=a+b%26c");
        append_query(&mut path, &[("active", None::<bool>)]).expect("encodes");
        assert_eq!(path, "/users?limit=10&tag=a+b%26c", "None is left out");
        let mut bare = "/users".to_owned();
        append_query(&mut bare, &[("active", None::<bool>)]).expect("encodes");
        assert_eq!(bare, "/users", "no dangling `?`");
        let nested = [("x", vec![1, 2])];
        assert!(append_query(&mut bare, &nested).is_err());
        assert_eq!(bare, "/users", "left as it was");
    }
}
