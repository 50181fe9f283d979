//! The one way the platform opens HTTP connections (feature `https`): TCP without Nagle's
//! delay, a connect timeout, optional keepalive, rustls for `https://` with the Mozilla
//! roots, and an [`AddressPolicy`] judging every address connected to. The SDK's transport,
//! the registry clients, the etcd client and the registry server's health probes all connect
//! through [`https_connector`].

mod address;

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use tower_service::Service;

pub use self::address::{AddressPolicy, AddressRefused, Connection, Connector};

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
/// timeout, optional keepalive, and rustls for `https://` (plain `http://` too).
pub fn https_connector(tls: rustls::ClientConfig, settings: ConnectSettings) -> SharedConnector {
    SharedConnector(Arc::new(connector(tls, settings)))
}

fn connector(tls: rustls::ClientConfig, settings: ConnectSettings) -> HttpsConnector<Connector> {
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

/// The connector behind one `Arc`. hyper-util's client clones its connector for every
/// request, in case the request needs a new connection; rustls's connector over ours is four
/// reference counts to take and give back each time, this one is one. The connector itself
/// is cloned only when a connection is opened.
#[derive(Clone, Debug)]
pub struct SharedConnector(Arc<HttpsConnector<Connector>>);

impl Service<http::Uri> for SharedConnector {
    type Response = MaybeHttpsStream<Connection>;
    type Error = <HttpsConnector<Connector> as Service<http::Uri>>::Error;
    type Future = <HttpsConnector<Connector> as Service<http::Uri>>::Future;

    // Always ready: so is every layer below (rustls's, ours, hyper-util's `HttpConnector`).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        HttpsConnector::clone(&self.0).call(uri)
    }
}
