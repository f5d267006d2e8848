//! The PROXY protocol (v1 text and v2 binary) on `listen ... proxy_protocol`.
//!
//! A load balancer in front sends one header before anything else; it names the original client.
//! [`parse`] is a pure function over the bytes received so far; [`read_header`] reads from the
//! socket until a header is complete and returns the bytes that followed it (the start of the TLS
//! or HTTP stream). A malformed header closes the connection with nothing forwarded, as nginx
//! (`broken header: "..." while reading PROXY protocol`).
//!
//! `$proxy_protocol_addr` / `$proxy_protocol_port` read [`ProxyHeader::source`];
//! `real_ip_header proxy_protocol` uses [`real_ip`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// nginx's `NGX_PROXY_PROTOCOL_MAX_HEADER` for v1 (107 bytes including CRLF).
const V1_MAX: usize = 107;
/// The v2 signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Largest v2 header accepted (signature, fixed part and TLVs).
const V2_MAX: usize = 4096;

/// The addresses a PROXY header carried. `source` is `None` for `PROXY UNKNOWN` and v2 `LOCAL`
/// (health checks of the balancer itself): the connection is served with its own addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyHeader {
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

/// Outcome of [`parse`] on the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header of `len` bytes.
    Done(ProxyHeader, usize),
    /// Could still become a valid header: read more.
    Incomplete,
}

/// Why a header is rejected (the text follows nginx's `broken header` log line).
#[derive(Debug, PartialEq, Eq)]
pub struct Broken(pub String);

/// Parse a v1 or v2 header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, Broken> {
    let n = buf.len().min(V2_SIG.len());
    if buf[..n] == V2_SIG[..n] {
        return parse_v2(buf);
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return parse_v1(buf);
    }
    Err(broken(buf))
}

fn broken(buf: &[u8]) -> Broken {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(V1_MAX);
    Broken(String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, Broken> {
    let Some(lf) = buf.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(broken(buf))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = &buf[..lf];
    let line = line.strip_suffix(b"\r").ok_or_else(|| broken(buf))?;
    let text = std::str::from_utf8(line).map_err(|_| broken(buf))?;
    let mut parts = text.split(' ');
    let _proxy = parts.next();
    let header = match parts.next() {
        Some("UNKNOWN") => ProxyHeader::default(),
        Some(fam @ ("TCP4" | "TCP6")) => {
            let v6 = fam == "TCP6";
            let fields: Vec<&str> = parts.collect();
            let [src, dst, sport, dport] = fields[..] else {
                return Err(broken(buf));
            };
            let ip = |s: &str| -> Option<IpAddr> {
                let a: IpAddr = s.parse().ok()?;
                (a.is_ipv6() == v6).then_some(a)
            };
            // Ports are 1-5 decimal digits, no sign, no leading `+`.
            let port = |s: &str| -> Option<u16> {
                if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            };
            match (ip(src), ip(dst), port(sport), port(dport)) {
                (Some(s), Some(d), Some(sp), Some(dp)) => ProxyHeader {
                    source: Some(SocketAddr::new(s, sp)),
                    destination: Some(SocketAddr::new(d, dp)),
                },
                _ => return Err(broken(buf)),
            }
        }
        _ => return Err(broken(buf)),
    };
    Ok(Parsed::Done(header, lf + 1))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, Broken> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let ver_cmd = buf[12];
    let fam = buf[13];
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let bad = |what: &str| Broken(format!("PROXY protocol v2 {what}"));
    if ver_cmd >> 4 != 2 {
        return Err(bad(&format!("unsupported version {}", ver_cmd >> 4)));
    }
    if 16 + len > V2_MAX {
        return Err(bad("header too large"));
    }
    if buf.len() < 16 + len {
        return Ok(Parsed::Incomplete);
    }
    let body = &buf[16..16 + len];
    let header = match ver_cmd & 0x0f {
        // LOCAL: the balancer's own connection, addresses ignored.
        0 => ProxyHeader::default(),
        1 => match fam {
            // TCP (or UDP) over IPv4.
            0x11 | 0x12 => {
                if body.len() < 12 {
                    return Err(bad("address block too short"));
                }
                let s = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                let d = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
                let sp = u16::from_be_bytes([body[8], body[9]]);
                let dp = u16::from_be_bytes([body[10], body[11]]);
                ProxyHeader {
                    source: Some(SocketAddr::new(s.into(), sp)),
                    destination: Some(SocketAddr::new(d.into(), dp)),
                }
            }
            0x21 | 0x22 => {
                if body.len() < 36 {
                    return Err(bad("address block too short"));
                }
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&body[0..16]);
                d.copy_from_slice(&body[16..32]);
                let sp = u16::from_be_bytes([body[32], body[33]]);
                let dp = u16::from_be_bytes([body[34], body[35]]);
                ProxyHeader {
                    source: Some(SocketAddr::new(Ipv6Addr::from(s).into(), sp)),
                    destination: Some(SocketAddr::new(Ipv6Addr::from(d).into(), dp)),
                }
            }
            // AF_UNSPEC and AF_UNIX: no usable address (nginx: "unknown" family, served as is).
            0x00 | 0x31 | 0x32 => ProxyHeader::default(),
            other => return Err(bad(&format!("unknown address family 0x{other:02x}"))),
        },
        other => return Err(bad(&format!("unknown command {other}"))),
    };
    Ok(Parsed::Done(header, 16 + len))
}

/// Why [`read_header`] gave up.
#[derive(Debug)]
pub enum ReadError {
    Broken(Broken),
    /// The client closed, the read failed, or `timeout` passed.
    Io(std::io::Error),
}

/// Read a PROXY header from `io` within `timeout`; returns it and the bytes read past it.
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<(ProxyHeader, Vec<u8>), ReadError> {
    let work = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            let n = io.read(&mut chunk).await.map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse(&buf).map_err(ReadError::Broken)? {
                Parsed::Done(h, len) => return Ok((h, buf.split_off(len))),
                Parsed::Incomplete => continue,
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// `real_ip_header proxy_protocol`: the client address to use instead of the connection's, when
/// the connection comes from an address `set_real_ip_from` trusts.
pub fn real_ip(
    real_ip: &crate::plan::RealIp,
    peer: IpAddr,
    header: Option<&ProxyHeader>,
) -> Option<SocketAddr> {
    if real_ip.header != crate::plan::RealIpHeader::ProxyProtocol {
        return None;
    }
    let src = header?.source?;
    let trusted = real_ip.from.iter().any(|f| match f {
        crate::plan::AccessFrom::All => true,
        crate::plan::AccessFrom::Unix => false,
        crate::plan::AccessFrom::Cidr { addr, prefix } => in_cidr(peer, *addr, *prefix),
    });
    trusted.then_some(src)
}

fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse(buf) {
            Ok(Parsed::Done(h, n)) => (h, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let (h, n) = done(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /");
        assert_eq!(n, 45);
        assert_eq!(h.source, Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(h.destination, Some("198.51.100.2:443".parse().unwrap()));
        let (h, _) = done(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n");
        assert_eq!(h.source, Some("[2001:db8::1]:1".parse().unwrap()));
        let (h, n) = done(b"PROXY UNKNOWN\r\n");
        assert_eq!((h, n), (ProxyHeader::default(), 15));
    }

    #[test]
    fn v1_incomplete_then_malformed() {
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(Parsed::Incomplete));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(parse(&long).is_err());
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut v = V2_SIG.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let mut body = vec![10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x01, 0xbb];
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a TLV, ignored
        let mut b = v2(1, 0x11, &body);
        b.extend_from_slice(b"GET");
        let (h, n) = done(&b);
        assert_eq!(n, b.len() - 3);
        assert_eq!(h.source, Some("10.0.0.1:8080".parse().unwrap()));
        assert_eq!(h.destination, Some("10.0.0.2:443".parse().unwrap()));
        let mut body = vec![0u8; 36];
        body[15] = 1;
        body[31] = 2;
        body[33] = 7;
        let (h, _) = done(&v2(1, 0x21, &body));
        assert_eq!(h.source, Some("[::1]:7".parse().unwrap()));
        let (h, n) = done(&v2(0, 0x00, &[]));
        assert_eq!((h, n), (ProxyHeader::default(), 16));
    }

    #[test]
    fn v2_malformed() {
        assert_eq!(parse(&V2_SIG[..5]), Ok(Parsed::Incomplete));
        assert_eq!(
            parse(&v2(1, 0x11, &[1, 2, 3])[..18]),
            Ok(Parsed::Incomplete)
        );
        assert!(parse(&v2(1, 0x11, &[1, 2, 3])).is_err()); // short address block
        assert!(parse(&v2(2, 0x11, &[0; 12])).is_err()); // unknown command
        assert!(parse(&v2(1, 0x41, &[0; 12])).is_err()); // unknown family
        let mut b = v2(1, 0x11, &[0; 12]);
        b[12] = 0x11; // version 1 in a v2 signature
        assert!(parse(&b).is_err());
    }
}
