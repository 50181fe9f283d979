//! The HTTP client the registry server's and etcd's backends share: hyper-util over
//! rustls, so a registry or an etcd cluster behind HTTPS works like a plain one.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::address::{AddressPolicy, Connector};
use crate::RegistryError;

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs.
pub(crate) type HttpClient = Client<HttpsConnector<Connector>, Full<Bytes>>;

/// The default client TLS: rustls with the ring provider, trusting the Mozilla roots
/// (webpki-roots), so it behaves the same in a distroless container as on a laptop. The
/// SDK's transport, the registry clients and the registry server's health probes all start
/// from it.
pub fn default_tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    tls_config_trusting(Vec::new())
}

/// [`default_tls_config`] that also trusts `extra_roots` (a private CA).
pub fn tls_config_trusting(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for root in extra_roots {
        roots.add(root)?;
    }
    // An explicit provider: rustls's process default panics when a dependency tree enables
    // both ring and aws-lc-rs.
    Ok(
        rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// [`default_tls_config`] as a registry result.
pub(crate) fn default_tls() -> Result<rustls::ClientConfig, RegistryError> {
    default_tls_config().map_err(|e| RegistryError::Invalid {
        field: "tls",
        reason: e.to_string(),
    })
}

/// How a connection is made: the settings of [`https_connector`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectSettings {
    /// Time allowed for the TCP connection.
    pub connect_timeout: Duration,
    /// TCP keepalive (idle time before probes, probe interval, probes), to notice a peer
    /// that vanished without closing; `None` for the OS default (off).
    pub keepalive: Option<(Duration, Duration, u32)>,
    /// Speak HTTP/2 only, also over plain TCP (prior knowledge); otherwise HTTP/1.1, with
    /// HTTP/2 negotiated through ALPN over TLS when `http2` is on.
    pub http2_only: bool,
    /// Offer HTTP/2 through ALPN.
    pub http2: bool,
    /// Which addresses may be connected to (`None`: every address). A server calling URLs
    /// that tenants gave it sets [`AddressPolicy::public_only`].
    pub addresses: Option<Arc<AddressPolicy>>,
}

/// The one way this workspace opens connections: TCP without Nagle's delay, a connect
/// timeout, optional keepalive, and rustls for `https://` (plain `http://` too). The SDK's
/// transport, the registry clients, the etcd client and the registry server's health probes
/// all connect through it.
pub fn https_connector(
    tls: rustls::ClientConfig,
    settings: ConnectSettings,
) -> HttpsConnector<Connector> {
    let mut connector = Connector::new(settings.addresses);
    let http = connector.http_mut();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    if let Some((idle, interval, retries)) = settings.keepalive {
        http.set_keepalive(Some(idle));
        http.set_keepalive_interval(Some(interval));
        http.set_keepalive_retries(Some(retries));
    }
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    match (settings.http2_only, settings.http2) {
        (true, _) => builder.enable_http2().wrap_connector(connector),
        (false, true) => builder.enable_all_versions().wrap_connector(connector),
        (false, false) => builder.enable_http1().wrap_connector(connector),
    }
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
