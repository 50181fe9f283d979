//! Who a request comes from: the peer's address, or, when the peer is a configured proxy,
//! the address that proxy says it forwarded for (`x-forwarded-for`, read from the right:
//! the last hop not itself a trusted proxy). A client can write anything into
//! `x-forwarded-for`, so it is believed only from trusted proxies; from anyone else it is
//! replaced, not extended, on the way to the service.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName};

/// `x-forwarded-for`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

/// Where a request comes from, as far as the gateway can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client: the peer, or the address a trusted proxy forwarded for.
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy (its `x-forwarded-*` headers are kept).
    pub via_trusted_proxy: bool,
}

impl TrustedProxies {
    /// Trusts these addresses and blocks.
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        TrustedProxies(nets)
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The origin of a request from `peer` carrying `headers`.
    ///
    /// ```
    /// use sdk_gateway::clients::TrustedProxies;
    /// let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("a block")]);
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2".parse().expect("a value"));
    /// let origin = proxies.origin("10.0.0.1:5000".parse().expect("an address"), &headers);
    /// assert_eq!(origin.client.to_string(), "203.0.113.9");
    /// // From an untrusted peer, the header counts for nothing.
    /// let origin = proxies.origin("198.51.100.7:5000".parse().expect("an address"), &headers);
    /// assert_eq!(origin.client.to_string(), "198.51.100.7");
    /// ```
    pub fn origin(&self, peer: SocketAddr, headers: &HeaderMap) -> Origin {
        let peer_ip = canonical(peer.ip());
        if !self.trusts(peer_ip) {
            return Origin {
                peer,
                client: peer_ip,
                via_trusted_proxy: false,
            };
        }
        let mut client = peer_ip;
        // Each header line is a list; the last line's last entry is the nearest hop.
        let hops = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|line| line.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Some(addr) = parse_hop(hop) else {
                break; // garbage from here on cannot be told apart from a forgery
            };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        Origin {
            peer,
            client,
            via_trusted_proxy: true,
        }
    }
}

/// One `x-forwarded-for` entry: an address, perhaps with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client has one key.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}
