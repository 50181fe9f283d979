//! Which addresses a connection may go to: a server that calls URLs a tenant gave it (the
//! event bus's webhook handlers) must not be turned against its own network: loopback,
//! private ranges, link-local (cloud metadata at `169.254.169.254`), and the rest of the
//! special-purpose ranges.
//!
//! The check is made on the address actually connected to: after DNS (a name that resolves
//! to `127.0.0.1` is refused, whatever it is called), and on IP literals in every spelling
//! (`127.1`, `2130706433`, `0x7f000001` go through `getaddrinfo`, which reads them as
//! `127.0.0.1`; `[::ffff:127.0.0.1]` is judged as the IPv4 address it maps). Nothing is
//! sent, not even a TCP handshake, to a refused address. Svix and Stripe refuse the same
//! ranges for their webhooks.
//!
//! hyper-util's `HttpConnector` resolves names through a resolver it is given, but connects
//! to IP literals without asking one: [`Connector`] judges literals itself and hands names
//! to a resolver that drops refused addresses.

use std::{
    fmt,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::client::legacy::connect::{
    dns::{GaiResolver, Name},
    HttpConnector,
};
use ipnet::IpNet;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Which addresses connections may go to.
///
/// ```
/// use sdk_base::https::AddressPolicy;
///
/// let policy = AddressPolicy::public_only();
/// assert!(policy.allows("93.184.215.14".parse().expect("an address")));
/// assert!(!policy.allows("127.0.0.1".parse().expect("an address")));
/// assert!(!policy.allows("::ffff:169.254.169.254".parse().expect("an address")));
/// let tests = AddressPolicy::public_only().allow("127.0.0.0/8".parse().expect("a network"));
/// assert!(tests.allows("127.0.0.1".parse().expect("an address")));
/// assert!(!tests.allows("10.0.0.1".parse().expect("an address")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Internal addresses are allowed too (the operator said so).
    any: bool,
    /// Internal networks allowed all the same.
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// Every address, internal ones included (what a service calling its own fleet wants).
    pub fn any() -> Self {
        AddressPolicy {
            any: true,
            allowed: Vec::new(),
        }
    }

    /// Public addresses only: loopback, private, shared (CGNAT), link-local, multicast,
    /// documentation, benchmarking and reserved ranges are refused, in IPv4 and IPv6, and an
    /// IPv6 address that embeds an IPv4 one (mapped, NAT64, 6to4) is judged by it.
    pub fn public_only() -> Self {
        AddressPolicy::default()
    }

    /// Allows `network` even though it is internal (an operator's allow-list).
    #[must_use]
    pub fn allow(mut self, network: IpNet) -> Self {
        self.allowed.push(network);
        self
    }

    /// Whether every address is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether a connection may go to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.any || !is_internal(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Judges a URL's host as written, before any lookup: an IP literal in any spelling a
    /// resolver accepts (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`,
    /// `[::ffff:7f00:1]`), and the names that always mean this machine or its network
    /// (`localhost`, `*.localhost`, `*.internal`, `*.local`). Other names are judged when
    /// they are resolved ([`Connector`]).
    pub fn check_host(&self, host: &str) -> Result<(), AddressRefused> {
        if self.any {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let literal = bare
            .parse::<IpAddr>()
            .ok()
            .or_else(|| loose_ipv4(bare).map(IpAddr::V4));
        if let Some(ip) = literal {
            return match self.allows(ip) {
                true => Ok(()),
                false => Err(AddressRefused::new(host, Some(ip))),
            };
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        let local = ["localhost", "internal", "local"]
            .iter()
            .any(|tld| name == *tld || name.ends_with(&format!(".{tld}")));
        if local && self.allowed.is_empty() {
            return Err(AddressRefused::new(host, None));
        }
        Ok(())
    }
}

/// A connection refused by the [`AddressPolicy`]: nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AddressRefused {
    host: String,
    ip: Option<IpAddr>,
}

impl AddressRefused {
    fn new(host: &str, ip: Option<IpAddr>) -> Self {
        AddressRefused {
            host: host.to_owned(),
            ip,
        }
    }
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.host)?;
        if let Some(ip) = self.ip.filter(|ip| ip.to_string() != self.host) {
            write!(f, " ({ip})")?;
        }
        f.write_str(" is an internal address (loopback, private, link-local or reserved), which this server may not call; an operator can allow it")
    }
}

/// Loopback, private, shared, link-local, multicast, documentation, benchmarking, reserved
/// (RFC 6890's special-purpose registries), for an address already made canonical.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0; 6] {
        return true; // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return s[2..6] != [0; 4] || is_internal_v4(embedded(s[6], s[7])); // NAT64
    }
    if s[0] == 0x2002 {
        return is_internal_v4(embedded(s[1], s[2])); // 6to4
    }
    (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo...)
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only
}

/// An IPv4 address as `inet_aton` (and so `getaddrinfo`, and the WHATWG URL parser) reads
/// it: one to four parts, each decimal, octal (`0` first) or hex (`0x` first), the last
/// filling the bytes left.
fn loose_ipv4(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) = match part.as_bytes() {
            [b'0', b'x' | b'X', ..] => (&part[2..], 16),
            [b'0', _, ..] => (&part[1..], 8),
            _ => (*part, 10),
        };
        if part.is_empty() {
            return None;
        }
        let value = match digits {
            "" => 0,
            _ => u64::from_str_radix(digits, radix).ok()?,
        };
        numbers.push(value);
    }
    let (last, first) = numbers.split_last()?;
    if first.iter().any(|&n| n > 255) || *last >= 1u64 << (8 * (5 - numbers.len())) {
        return None;
    }
    let mut value = *last;
    for (i, n) in first.iter().enumerate() {
        value |= n << (8 * (3 - i));
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

// === impl Resolver ===

/// `getaddrinfo` (hyper-util's resolver), keeping only the addresses the policy allows.
#[derive(Clone, Debug)]
pub(crate) struct Resolver {
    gai: GaiResolver,
    policy: Option<Arc<AddressPolicy>>,
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.gai.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        let lookup = self.gai.call(name);
        Box::pin(async move {
            let found: Vec<SocketAddr> = lookup.await?.collect();
            let Some(policy) = policy else {
                return Ok(found.into_iter());
            };
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| policy.allows(addr.ip()))
                .collect();
            match (kept.is_empty(), found.first()) {
                (true, Some(first)) => Err(AddressRefused::new(&host, Some(first.ip())).into()),
                _ => Ok(kept.into_iter()),
            }
        })
    }
}

// === impl Connector ===

/// hyper-util's `HttpConnector` under an [`AddressPolicy`]: IP literals are judged before
/// connecting, names once resolved.
#[derive(Clone, Debug)]
pub struct Connector {
    http: HttpConnector<Resolver>,
    policy: Option<Arc<AddressPolicy>>,
}

impl Connector {
    /// A connector under `policy` (`None`: every address, at no cost).
    pub(crate) fn new(policy: Option<Arc<AddressPolicy>>) -> Self {
        let policy = policy.filter(|p| !p.allows_any());
        let resolver = Resolver {
            gai: GaiResolver::new(),
            policy: policy.clone(),
        };
        Connector {
            http: HttpConnector::new_with_resolver(resolver),
            policy,
        }
    }

    /// The TCP settings.
    pub(crate) fn http_mut(&mut self) -> &mut HttpConnector<Resolver> {
        &mut self.http
    }
}

/// A connection as hyper-util's `HttpConnector` opens it, without the `HttpInfo` (both
/// addresses) hyper-util would put in the extensions of every response it brings: nothing
/// here reads it, and putting it there costs two allocations (an extensions map and its
/// entry, ~400 instructions) a request.
#[derive(Debug)]
pub struct Connection(<HttpConnector<Resolver> as Service<Uri>>::Response);

impl hyper_util::client::legacy::connect::Connection for Connection {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

impl hyper::rt::Read for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Service<Uri> for Connector {
    type Response = Connection;
    type Error = BoxError;
    type Future = BoxFuture<Connection>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let (Some(policy), Some(host)) = (&self.policy, uri.host()) {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                if !policy.allows(ip) {
                    let refused = AddressRefused::new(host, Some(ip));
                    return Box::pin(async move { Err(refused.into()) });
                }
            }
        }
        let connecting = self.http.call(uri);
        Box::pin(async move { Ok(Connection(connecting.await?)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        let policy = AddressPolicy::public_only();
        for host in [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "0x7f.1",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "0.0.0.0",
            "0",
            "169.254.169.254",
            "[::ffff:169.254.169.254]",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "[fd00::1]",
            "[fe80::1]",
            "[64:ff9b::7f00:1]",
            "[2002:7f00:1::]",
            "localhost",
            "api.localhost",
            "metadata.google.internal",
            "printer.local",
            "LOCALHOST.",
        ] {
            assert!(policy.check_host(host).is_err(), "{host} was allowed");
        }
        for host in [
            "93.184.215.14",
            "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]",
            "example.com",
            "172.32.0.1",
            "1.1.1.1",
        ] {
            assert_eq!(policy.check_host(host), Ok(()), "{host}");
        }
        assert_eq!(AddressPolicy::any().check_host("127.0.0.1"), Ok(()));
        let loopback = AddressPolicy::public_only().allow("127.0.0.0/8".parse().expect("net"));
        assert_eq!(loopback.check_host("127.1"), Ok(()));
        assert_eq!(loopback.check_host("localhost"), Ok(()));
        assert!(loopback.check_host("10.0.0.1").is_err());
    }

    #[test]
    fn loose_ipv4_reads_as_inet_aton_does() {
        let read = |s| loose_ipv4(s).map(|ip| ip.to_string());
        assert_eq!(read("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("2130706433").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("0x7f000001").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("0177.0.0.01").as_deref(), Some("127.0.0.1"));
        assert_eq!(read("10.0x10.1").as_deref(), Some("10.16.0.1"));
        assert_eq!(read("256.1.1.1"), None);
        assert_eq!(read("example.com"), None);
        assert_eq!(read("1.2.3.4.5"), None);
        assert_eq!(read("4294967296"), None);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_before_connecting() {
        let mut connector = Connector::new(Some(Arc::new(AddressPolicy::public_only())));
        for uri in [
            "http://localhost:9/",
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
        ] {
            let err = connector
                .call(uri.parse().expect("a URI"))
                .await
                .expect_err("refused");
            assert!(
                crate::causes(err.as_ref()).any(|c| c.is::<AddressRefused>()),
                "{uri}: {err}"
            );
        }
    }
}
