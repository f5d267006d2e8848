//! nginx's realip module: when the peer is in `set_real_ip_from`, `$remote_addr` (and the address
//! `allow`/`deny`, `ip_hash` and logs see) becomes the client named by `real_ip_header`;
//! `$realip_remote_addr` keeps the peer. A header from an untrusted peer is never read.
//!
//! `proxy_protocol` takes the source address of the connection's PROXY header.
//! `X-Forwarded-For` (and X-Real-IP / any other header, parsed the same way) is read from the right:
//! without `real_ip_recursive` the last address wins; with it, trusted addresses are skipped and the
//! rightmost untrusted one wins (`ngx_http_get_forwarded_addr`).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use super::access::{matches, Client};
use crate::plan::{AccessFrom, RealIp, RealIpHeader};

/// The client address `conf` makes of `peer` and the request headers (or, for
/// `real_ip_header proxy_protocol`, the PROXY header's source `proxied`), or `None` to keep the peer.
pub fn real_addr(
    conf: &RealIp,
    peer: SocketAddr,
    headers: &HeaderMap,
    proxied: Option<SocketAddr>,
) -> Option<SocketAddr> {
    if !trusted(&conf.from, peer.ip()) {
        return None;
    }
    let name = match &conf.header {
        RealIpHeader::XRealIp => http::HeaderName::from_static("x-real-ip"),
        RealIpHeader::XForwardedFor => super::ctx::X_FORWARDED_FOR,
        RealIpHeader::ProxyProtocol => return proxied,
        RealIpHeader::Other(n) => n.clone(),
    };
    let value = if conf.header == RealIpHeader::XForwardedFor {
        // Several X-Forwarded-For lines form one list, in order.
        let parts: Vec<&[u8]> = headers
            .get_all(&name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if parts.is_empty() {
            return None;
        }
        parts.join(&b", "[..])
    } else {
        headers.get(&name)?.as_bytes().to_vec()
    };
    forwarded(&value, &conf.from, conf.recursive)
}

fn trusted(from: &[AccessFrom], ip: IpAddr) -> bool {
    from.iter().any(|f| matches(f, Client::Ip(ip)))
}

/// Walk the list from its right end as nginx does.
fn forwarded(list: &[u8], from: &[AccessFrom], recursive: bool) -> Option<SocketAddr> {
    let mut rest = list;
    let mut found = None;
    loop {
        // Skip separators at the end, then take the last entry.
        let end = rest.iter().rposition(|&b| b != b' ' && b != b',')?;
        let body = &rest[..=end];
        let start = body
            .iter()
            .rposition(|&b| b == b' ' || b == b',')
            .map_or(0, |i| i + 1);
        let Some(addr) = parse_addr(&body[start..]) else {
            return found;
        };
        found = Some(addr);
        rest = &body[..start];
        if !recursive || start == 0 || !trusted(from, addr.ip()) {
            return found;
        }
    }
}

/// An address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
fn parse_addr(b: &[u8]) -> Option<SocketAddr> {
    let s = std::str::from_utf8(b).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, prefix: u8) -> AccessFrom {
        AccessFrom::Cidr {
            addr: s.parse().expect("test address"),
            prefix,
        }
    }

    fn conf(header: RealIpHeader, recursive: bool) -> RealIp {
        RealIp {
            from: vec![net("127.0.0.0", 8), net("10.0.0.0", 8)],
            header,
            recursive,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().expect("test address"), 5555)
    }

    fn ip(a: Option<SocketAddr>) -> Option<String> {
        a.map(|a| a.ip().to_string())
    }

    #[test]
    fn untrusted_peer_is_never_believed() {
        let h = headers(&[("x-real-ip", "1.1.1.1")]);
        let c = conf(RealIpHeader::XRealIp, false);
        assert_eq!(real_addr(&c, peer("192.168.1.1"), &h, None), None);
        assert_eq!(
            ip(real_addr(&c, peer("127.0.0.2"), &h, None)),
            Some("1.1.1.1".into())
        );
        let pp = conf(RealIpHeader::ProxyProtocol, false);
        let src = Some(SocketAddr::from(([198, 51, 100, 1], 4000)));
        assert_eq!(real_addr(&pp, peer("127.0.0.2"), &h, src), src);
        assert_eq!(real_addr(&pp, peer("192.168.1.1"), &h, src), None);
        let bad = headers(&[("x-real-ip", "not-an-ip")]);
        assert_eq!(real_addr(&c, peer("127.0.0.2"), &bad, None), None);
    }

    #[test]
    fn forwarded_for_plain_and_recursive() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 2.2.2.2"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        let plain = conf(RealIpHeader::XForwardedFor, false);
        assert_eq!(
            ip(real_addr(&plain, peer("127.0.0.1"), &h, None)),
            Some("10.1.1.1".into())
        );
        let rec = conf(RealIpHeader::XForwardedFor, true);
        assert_eq!(
            ip(real_addr(&rec, peer("127.0.0.1"), &h, None)),
            Some("2.2.2.2".into())
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.9, 127.0.0.5")]);
        assert_eq!(
            ip(real_addr(&rec, peer("127.0.0.1"), &all_trusted, None)),
            Some("10.0.0.9".into())
        );
        let v6 = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            ip(real_addr(&plain, peer("127.0.0.1"), &v6, None)),
            Some("2001:db8::1".into())
        );
    }
}
