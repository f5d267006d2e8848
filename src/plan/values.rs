//! Value parsers with nginx's syntax: times, sizes, flags, numbers, `listen` addresses, upstream
//! `server` parameters and URLs. Each returns nginx's message fragment as the error, so the caller
//! only adds the location.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// `ngx_parse_time`: `10s`, `1m30s`, `500ms`, `1h`, bare number = seconds. Units must come in
/// descending order (`1s1m` is invalid), as nginx requires.
pub fn parse_time(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    // Units from largest to smallest, with their size in milliseconds.
    const UNITS: [(&str, u64); 8] = [
        ("y", 365 * 86_400_000),
        ("M", 30 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit = 0usize; // index into UNITS that the next unit must be at or after
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let n: u64 = s[start..i].parse().ok()?;
        // Unit: "ms" must be checked before "m".
        let rest = &s[i..];
        let unit = if rest.starts_with("ms") {
            Some(7)
        } else if let Some(c) = rest.chars().next() {
            UNITS
                .iter()
                .position(|(u, _)| u.len() == 1 && u.starts_with(c))
        } else {
            None
        };
        match unit {
            Some(u) => {
                if u < last_unit {
                    return None;
                }
                last_unit = u + 1;
                i += UNITS[u].0.len();
                total = total.checked_add(n.checked_mul(UNITS[u].1)?)?;
            }
            None if i == b.len() => {
                // A bare number (possibly after other units) counts as seconds.
                if last_unit > 6 {
                    return None;
                }
                total = total.checked_add(n.checked_mul(1000)?)?;
            }
            None => return None,
        }
    }
    // nginx keeps times in an ngx_msec_t / time_t; reject what would overflow a 32-bit value of seconds.
    if total / 1000 > i32::MAX as u64 {
        return None;
    }
    Some(Duration::from_millis(total))
}

/// `ngx_parse_size`: bytes with optional `k`/`K`/`m`/`M`.
pub fn parse_size(s: &str) -> Option<u64> {
    parse_scaled(s, false)
}

/// `ngx_parse_offset`: like a size but also `g`/`G`.
pub fn parse_offset(s: &str) -> Option<u64> {
    parse_scaled(s, true)
}

fn parse_scaled(s: &str, allow_g: bool) -> Option<u64> {
    let (num, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' | b'G' if allow_g => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    let n = parse_number(num)?;
    n.checked_mul(scale).filter(|v| *v <= i64::MAX as u64)
}

/// `ngx_atoi`: only ASCII digits, no sign.
pub fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| *v <= i64::MAX as u64)
}

/// `on` / `off` exactly (nginx compares case-insensitively).
pub fn parse_flag(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("on") {
        Some(true)
    } else if s.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// A host and port as written in `listen`, `server` (upstream) and `proxy_pass`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPort {
    /// A literal address (`127.0.0.1`, `[::1]`, or `*` = any).
    Addr(IpAddr, u16),
    /// A name to resolve.
    Name(String, u16),
    /// `unix:/path`.
    Unix(String),
}

/// `ngx_parse_url` for the forms nginx-rs uses. `default_port` applies when none is written;
/// `port_only` accepts a bare number as a port (as `listen` does). Errors are nginx's `u.err`.
pub fn parse_host_port(
    s: &str,
    default_port: Option<u16>,
    port_only: bool,
) -> Result<HostPort, &'static str> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("no path in the unix domain socket");
        }
        return Ok(HostPort::Unix(path.to_string()));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("invalid host")?;
        let ip: Ipv6Addr = rest[..end].parse().map_err(|_| "invalid IPv6 address")?;
        let after = &rest[end + 1..];
        let port = if let Some(p) = after.strip_prefix(':') {
            parse_port(p)?
        } else if after.is_empty() {
            default_port.ok_or("no port")?
        } else {
            return Err("invalid host");
        };
        return Ok(HostPort::Addr(IpAddr::V6(ip), port));
    }
    if port_only && !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        let port = parse_port(s)?;
        return Ok(HostPort::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    let (host, port) = match s.rfind(':') {
        Some(i) => (&s[..i], parse_port(&s[i + 1..])?),
        None => (s, default_port.ok_or("no port")?),
    };
    if host.is_empty() {
        return Err("no host");
    }
    if host == "*" {
        return Ok(HostPort::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(HostPort::Addr(IpAddr::V4(ip), port));
    }
    if host
        .bytes()
        .any(|c| c == b'/' || c == b'?' || c.is_ascii_whitespace())
    {
        return Err("invalid host");
    }
    Ok(HostPort::Name(host.to_string(), port))
}

/// A port 1..=65535; nginx's message for anything else is `invalid port`.
pub fn parse_port(s: &str) -> Result<u16, &'static str> {
    match parse_number(s) {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err("invalid port"),
    }
}

/// The parts of a `proxy_pass` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    pub https: bool,
    /// Host part as written, with its `:port` if written (this is nginx's `$proxy_host`).
    pub host_port: String,
    /// Host only (the upstream name to look up).
    pub host: String,
    pub port: u16,
    pub port_written: bool,
    /// URI part, if any (`/x/`).
    pub uri: Option<String>,
    /// `unix:/path` socket, if that form was used.
    pub unix: Option<String>,
}

/// `proxy_pass` URL without variables. Errors are full nginx fragments.
pub fn parse_proxy_url(url: &str) -> Result<ProxyUrl, String> {
    let (https, rest) = if let Some(r) = strip_prefix_ci(url, "http://") {
        (false, r)
    } else if let Some(r) = strip_prefix_ci(url, "https://") {
        (true, r)
    } else {
        return Err("invalid URL prefix".into());
    };
    let default_port = if https { 443 } else { 80 };
    if let Some(unix) = rest.strip_prefix("unix:") {
        // `unix:/path:/uri` — the socket path ends at the first ':' after it.
        let (path, uri) = match unix.find(':') {
            Some(i) => (&unix[..i], Some(unix[i + 1..].to_string())),
            None => (unix, None),
        };
        if path.is_empty() {
            return Err(format!(
                "no path in the unix domain socket in upstream \"{rest}\""
            ));
        }
        return Ok(ProxyUrl {
            https,
            host_port: "localhost".into(),
            host: format!("unix:{path}"),
            port: 0,
            port_written: false,
            uri,
            unix: Some(path.to_string()),
        });
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hp, uri) = (&rest[..split], &rest[split..]);
    if hp.is_empty() {
        return Err(format!("no host in upstream \"{rest}\""));
    }
    let hostport = parse_host_port(hp, Some(default_port), false)
        .map_err(|e| format!("{e} in upstream \"{rest}\""))?;
    let port = match &hostport {
        HostPort::Addr(_, p) | HostPort::Name(_, p) => *p,
        HostPort::Unix(_) => return Err(format!("invalid host in upstream \"{rest}\"")),
    };
    let host = if hp.starts_with('[') {
        hp[..hp.find(']').map_or(hp.len(), |i| i + 1)].to_string()
    } else {
        host_only(hp).to_string()
    };
    let port_written = hp.len() > host.len();
    Ok(ProxyUrl {
        https,
        host_port: hp.to_string(),
        host,
        port,
        port_written,
        uri: if uri.is_empty() {
            None
        } else {
            Some(uri.to_string())
        },
        unix: None,
    })
}

fn host_only(hp: &str) -> &str {
    match hp.rfind(':') {
        Some(i) => &hp[..i],
        None => hp,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// `allow`/`deny`/`set_real_ip_from` value: `all`, `unix:`, an address or CIDR. Returns the
/// address, prefix length and whether host bits were set (nginx warns `low address bits of X are
/// meaningless`).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8, bool)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => {
            let n = parse_number(p)?;
            if n > max {
                return None;
            }
            n as u8
        }
        None => max as u8,
    };
    let masked = mask_ip(ip, prefix);
    Some((masked, prefix, masked != ip))
}

/// Clears the host bits of `ip` beyond `prefix`.
pub fn mask_ip(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// `0.0.0.0:80`, `[::]:80`: the text nginx uses for listen addresses in messages.
pub fn fmt_sockaddr(a: &SocketAddr) -> String {
    a.to_string()
}

/// Levenshtein distance, for `did you mean` hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate within a distance that scales with the word's length.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.len() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("1d2h"), Some(Duration::from_secs(93600)));
        assert_eq!(parse_time("1s500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_time("0"), Some(Duration::ZERO));
        assert_eq!(parse_time("1s1m"), None);
        assert_eq!(parse_time("abc"), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("10x"), None);
        assert_eq!(parse_time("-1s"), None);
        assert_eq!(parse_time("s"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("1g"), None);
        assert_eq!(parse_offset("1g"), Some(1 << 30));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("1.5k"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn flags_and_numbers() {
        assert_eq!(parse_flag("on"), Some(true));
        assert_eq!(parse_flag("OFF"), Some(false));
        assert_eq!(parse_flag("yes"), None);
        assert_eq!(parse_number("42"), Some(42));
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("4x"), None);
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            parse_host_port("80", None, true),
            Ok(HostPort::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80))
        );
        assert_eq!(
            parse_host_port("127.0.0.1:8080", None, true),
            Ok(HostPort::Addr("127.0.0.1".parse().unwrap(), 8080))
        );
        assert_eq!(
            parse_host_port("[::]:443", None, true),
            Ok(HostPort::Addr("::".parse().unwrap(), 443))
        );
        assert_eq!(
            parse_host_port("*:80", None, true),
            Ok(HostPort::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80))
        );
        assert_eq!(parse_host_port("70000", None, true), Err("invalid port"));
        assert_eq!(parse_host_port("0", None, true), Err("invalid port"));
        assert_eq!(parse_host_port("a:b", None, true), Err("invalid port"));
        assert_eq!(
            parse_host_port("backend:5001", Some(80), false),
            Ok(HostPort::Name("backend".into(), 5001))
        );
        assert_eq!(
            parse_host_port("backend", Some(80), false),
            Ok(HostPort::Name("backend".into(), 80))
        );
        assert_eq!(
            parse_host_port("unix:/tmp/s", None, false),
            Ok(HostPort::Unix("/tmp/s".into()))
        );
        assert_eq!(
            parse_host_port("unix:", None, false),
            Err("no path in the unix domain socket")
        );
    }

    #[test]
    fn urls() {
        let u = parse_proxy_url("http://flask_app").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.uri.as_deref(), u.https),
            ("flask_app", 80, None, false)
        );
        let u = parse_proxy_url("https://b:8443/x/").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.uri.as_deref(),
                u.host_port.as_str()
            ),
            ("b", 8443, Some("/x/"), "b:8443")
        );
        assert!(u.port_written);
        let u = parse_proxy_url("http://[::1]:81").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 81));
        let u = parse_proxy_url("http://unix:/tmp/s.sock:/api").unwrap();
        assert_eq!(
            (u.unix.as_deref(), u.uri.as_deref()),
            (Some("/tmp/s.sock"), Some("/api"))
        );
        assert_eq!(
            parse_proxy_url("ftp://x").unwrap_err(),
            "invalid URL prefix"
        );
        assert_eq!(parse_proxy_url("b:80").unwrap_err(), "invalid URL prefix");
        assert_eq!(
            parse_proxy_url("http://b:99999").unwrap_err(),
            "invalid port in upstream \"b:99999\""
        );
        assert_eq!(
            parse_proxy_url("http://").unwrap_err(),
            "no host in upstream \"\""
        );
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8, false))
        );
        assert_eq!(
            parse_cidr("10.1.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8, true))
        );
        assert_eq!(
            parse_cidr("::1"),
            Some(("::1".parse().unwrap(), 128, false))
        );
        assert_eq!(parse_cidr("1.2.3.4/33"), None);
        assert_eq!(parse_cidr("nope"), None);
    }

    #[test]
    fn hints() {
        assert_eq!(
            did_you_mean("proxy_pas", ["proxy_pass", "proxy_redirect"]),
            Some("proxy_pass")
        );
        assert_eq!(did_you_mean("xyz", ["proxy_pass"]), None);
    }
}
