//! `allow` / `deny` (nginx's access module): the rules of the final location, checked in order; the
//! first rule that matches the client address decides, and no match allows. `unix:` matches only
//! clients on a UNIX-domain socket; `all` matches everyone; an IPv4-mapped IPv6 client is checked as
//! the IPv4 address it carries, as nginx does.

use std::net::IpAddr;

use crate::plan::{AccessFrom, AccessRule};

/// The client as the access rules see it: an IP address (after `real_ip_header`), or a UNIX socket.
#[derive(Clone, Copy, Debug)]
pub enum Client {
    Ip(IpAddr),
    Unix,
}

/// `true` when `rules` let `client` in.
pub fn allowed(rules: &[AccessRule], client: Client) -> bool {
    for r in rules {
        if matches(&r.from, client) {
            return r.allow;
        }
    }
    true
}

/// Whether `from` covers `client` (also used for `set_real_ip_from`).
pub fn matches(from: &AccessFrom, client: Client) -> bool {
    match (from, client) {
        (AccessFrom::All, _) => true,
        (AccessFrom::Unix, Client::Unix) => true,
        (AccessFrom::Unix, Client::Ip(_)) | (AccessFrom::Cidr { .. }, Client::Unix) => false,
        (AccessFrom::Cidr { addr, prefix }, Client::Ip(ip)) => cidr(*addr, *prefix, canonical(ip)),
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn cidr(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = u32::from(prefix.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = u32::from(prefix.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::Span;

    fn rule(allow: bool, from: AccessFrom) -> AccessRule {
        AccessRule {
            allow,
            from,
            span: Span::new("t.conf".into(), 1, 1),
        }
    }

    fn net(s: &str, prefix: u8) -> AccessFrom {
        AccessFrom::Cidr {
            addr: s.parse().expect("test address"),
            prefix,
        }
    }

    fn ip(s: &str) -> Client {
        Client::Ip(s.parse().expect("test address"))
    }

    #[test]
    fn first_match_wins() {
        let rules = [
            rule(false, net("127.0.0.3", 32)),
            rule(true, net("127.0.0.0", 24)),
            rule(false, AccessFrom::All),
        ];
        assert!(allowed(&rules, ip("127.0.0.2")));
        assert!(!allowed(&rules, ip("127.0.0.3")));
        assert!(!allowed(&rules, ip("10.0.0.1")));
        assert!(allowed(&[], ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_and_mapped_and_unix() {
        let rules = [
            rule(true, net("2001:db8::", 32)),
            rule(true, net("10.0.0.0", 8)),
            rule(false, AccessFrom::Unix),
            rule(false, AccessFrom::All),
        ];
        assert!(allowed(&rules, ip("2001:db8:1::5")));
        assert!(!allowed(&rules, ip("2001:db9::5")));
        assert!(allowed(&rules, ip("::ffff:10.1.2.3")));
        assert!(!allowed(&rules, Client::Unix));
        let unix_ok = [rule(true, AccessFrom::Unix), rule(false, AccessFrom::All)];
        assert!(allowed(&unix_ok, Client::Unix));
        assert!(!allowed(&unix_ok, ip("127.0.0.1")));
        assert!(matches(&net("0.0.0.0", 0), ip("1.2.3.4")));
        assert!(!matches(&net("0.0.0.0", 0), ip("::1")));
    }
}
