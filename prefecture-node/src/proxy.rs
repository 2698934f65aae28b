//! Who is calling: the client address the sign-in throttles key on. Behind a reverse proxy every
//! request comes from the proxy, so its `X-Forwarded-For` header names the client; but anyone can
//! send that header, so it is read only when the TCP peer is a proxy the operator configured
//! (`serve --trusted-proxy`), and otherwise ignored.

use std::net::IpAddr;
use std::str::FromStr;

/// An address or a network (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8, ::1)");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.5`, as a dual-stack listener reports it) is the
/// IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client: the peer itself unless it is a trusted proxy; then, walking `X-Forwarded-For`
    /// from the right (each proxy appends the address it saw), the first address that is not a
    /// trusted proxy. A value that is not an address ends the walk at the last trusted hop, since
    /// what stands left of it was written by the client and proves nothing.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let Some(header) = forwarded_for else { return client };
        for hop in header.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else { return client };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.1.1")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped peers match IPv4 networks");
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().contains(ip("203.0.113.9")));
        for bad in ["", "proxy.example.jp", "10.0.0.0/33", "10.0.0.0/x", "::1/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), Some("198.51.100.1")), ip("127.0.0.1"));
        let proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]);
        // From the proxy: the address it saw.
        assert_eq!(proxies.client(ip("127.0.0.1"), Some("198.51.100.1")), ip("198.51.100.1"));
        // A client cannot choose its address by sending the header itself through the proxy.
        assert_eq!(proxies.client(ip("127.0.0.1"), Some("1.2.3.4, 198.51.100.1")), ip("198.51.100.1"));
        // Two trusted proxies in a row.
        assert_eq!(proxies.client(ip("10.0.0.2"), Some("198.51.100.1, 10.0.0.3")), ip("198.51.100.1"));
        // Not from a proxy: the header is ignored.
        assert_eq!(proxies.client(ip("203.0.113.5"), Some("198.51.100.1")), ip("203.0.113.5"));
        // Garbage, or no header: the last trusted hop.
        assert_eq!(proxies.client(ip("127.0.0.1"), Some("nonsense")), ip("127.0.0.1"));
        assert_eq!(proxies.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
    }
}
