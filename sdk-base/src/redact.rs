//! Keeping credentials in URLs out of messages: the one place that decides how a URL is
//! shown, as Go's `URL.Redacted()` does.

use std::borrow::Cow;

/// `url` with the password of any `user:password@` part replaced by `xxxxx` (a user without
/// a password is shown as is), for logs, errors and `Debug` output.
///
/// ```
/// use sdk_base::redact_url;
///
/// assert_eq!(redact_url("https://shop:hunter2@etcd:2379"), "https://shop:xxxxx@etcd:2379");
/// assert_eq!(redact_url("http://10.0.0.7:8500/v1"), "http://10.0.0.7:8500/v1");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..end].rfind('@').map(|i| start + i) else {
        return Cow::Borrowed(url);
    };
    let userinfo = &url[start..at];
    match userinfo.find(':') {
        Some(colon) => Cow::Owned(format!(
            "{}{}:xxxxx{}",
            &url[..start],
            &userinfo[..colon],
            &url[at..]
        )),
        None => Cow::Borrowed(url),
    }
}

/// Whether `url` carries a `user@` or `user:password@` part.
pub fn has_userinfo(url: &str) -> bool {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    url[start..end].contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("http://u:p@h:1", "http://u:xxxxx@h:1"),
            ("http://u:p@h:1/a@b", "http://u:xxxxx@h:1/a@b"),
            ("http://u@h:1", "http://u@h:1"),
            ("u:p@h:1", "u:xxxxx@h:1"),
            ("http://h:1/?x=a@b", "http://h:1/?x=a@b"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        assert!(has_userinfo("https://a:b@c"));
        assert!(!has_userinfo("https://c/x@y"));
    }
}
