//! The HTTP client the registry server's and etcd's backends share: hyper-util over
//! rustls, so a registry or an etcd cluster behind HTTPS works like a plain one.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use sdk_base::https::SharedConnector;

use crate::RegistryError;
use sdk_base::https::{default_tls_config, https_connector, ConnectSettings};

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs.
pub(crate) type HttpClient = Client<SharedConnector, Full<Bytes>>;

/// [`default_tls_config`] as a registry result.
pub(crate) fn default_tls() -> Result<rustls::ClientConfig, RegistryError> {
    default_tls_config().map_err(|e| RegistryError::Invalid {
        field: "tls",
        reason: e.to_string(),
    })
}

/// A client using `tls` for HTTPS.
pub(crate) fn http_client(tls: rustls::ClientConfig, connect_timeout: Duration) -> HttpClient {
    // Watches hold a connection open for as long as nothing changes; TCP keepalive notices a
    // peer that vanished without closing it (a partition, a host gone) within about a
    // minute, and the watch then reconnects or fails over.
    let settings = ConnectSettings {
        connect_timeout,
        keepalive: Some((Duration::from_secs(30), Duration::from_secs(10), 3)),
        http2_only: false,
        http2: false,
        addresses: None,
    };
    Client::builder(TokioExecutor::new()).build(https_connector(tls, settings))
}

/// `url` without a trailing `/`, if it is `http://host:port` or `https://host:port` (no
/// path); otherwise an error naming `field`.
pub(crate) fn base_url(field: &'static str, url: &str) -> Result<String, RegistryError> {
    let base = url.trim_end_matches('/');
    let invalid = |reason: String| RegistryError::Invalid { field, reason };
    let shown = crate::redact_url(base);
    if sdk_base::has_userinfo(base) {
        // Refused rather than silently dropped: the credentials would never be sent, and
        // every message that showed the URL would carry them.
        return Err(invalid(format!(
            "`{shown}`: credentials in the URL are not used; give the registry server's token \
             as `registry_token`, or etcd's user and password as `etcd_user` and `etcd_password`"
        )));
    }
    let uri: Uri = base
        .parse()
        .map_err(|_| invalid(format!("`{shown}` is not a URL")))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() || uri.path() != "/" || uri.query().is_some() {
        return Err(invalid(format!(
            "`{base}`: use http://host:port or https://host:port"
        )));
    }
    Ok(base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("url", "https://registry.internal:8500/")
                .ok()
                .as_deref(),
            Some("https://registry.internal:8500")
        );
        assert!(base_url("url", "http://127.0.0.1:2379").is_ok());
        let err = base_url("url", "http://user:hunter2@127.0.0.1:2379").expect_err("credentials");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("registry_token"), "{err}");
        for bad in [
            "ftp://x:1",
            "x:1",
            "http://",
            "http://x:1/api",
            "http://x:1?a=b",
        ] {
            assert!(base_url("url", bad).is_err(), "{bad}");
        }
    }
}
