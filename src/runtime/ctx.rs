//! Per-request state and the rendering of compiled templates (`$host`, `$remote_addr`, captures, ...).
//!
//! A [`RequestCtx`] is filled once when the request head arrives (after server selection and location
//! matching) and then read by every template: `proxy_set_header` values, `proxy_pass` with variables,
//! and (for the ops engineer) log formats. Rendering appends bytes to a caller's buffer; nothing is
//! parsed here, variables were resolved when the Plan was compiled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Version};

use super::router::Captures;
use crate::plan::{Segment, Server, Template, Var};

/// The nginx version whose behaviour nginx-rs reproduces (`$nginx_version`).
pub const NGINX_VERSION: &str = "1.22.1";

/// What nginx-rs says in `Server:` and error pages with `server_tokens on`.
pub const SERVER_TOKEN_FULL: &str = concat!("nginx-rs/", env!("CARGO_PKG_VERSION"));
/// ... and with `server_tokens off`.
pub const SERVER_TOKEN_SHORT: &str = "nginx-rs";

/// Connection-level facts, shared by every request on one client connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// nginx's `$connection`: a serial number per connection.
    pub id: u64,
    /// TLS and PROXY protocol facts learnt before the first request (`$ssl_*`, `$scheme`,
    /// `$proxy_protocol_addr`).
    pub handshake: super::handshake::Edge,
    /// Plain HTTP/1 connections: how the proxy notices the client going away while it waits on
    /// the upstream (hyper does not look on these; see `client_tcp`).
    pub watch: Option<super::client_tcp::ClientWatch>,
}

/// One attempt at an upstream peer, for `$upstream_addr`, `$upstream_status`, `$upstream_response_time`.
#[derive(Clone, Debug)]
pub struct UpstreamTry {
    pub addr: crate::plan::PeerAddr,
    /// The upstream's status, or the 502/504 this attempt ended in; `None` prints `-`.
    pub status: Option<u16>,
    pub response_time: f64,
}

/// Everything a template can ask about a request.
pub struct RequestCtx {
    pub conn: Arc<ConnInfo>,
    /// `$connection_requests`: 1 for the first request on the connection.
    pub conn_requests: u64,
    pub start: Instant,
    pub method: Method,
    pub version: Version,
    /// `$request_uri`: the request target as sent (path and query; for absolute-form, from the path).
    pub request_uri: String,
    /// The absolute-form target as sent (`GET http://host/x HTTP/1.1`), for `$request`; `None` for
    /// the usual origin form, where it equals `request_uri`.
    pub absolute_target: Option<String>,
    /// `$uri`: decoded and normalised path.
    pub uri: String,
    /// `$args`: the raw query string, without `?`.
    pub args: String,
    pub headers: HeaderMap,
    /// The client's header names as sent, in order (`None`: all were lower case): nginx forwards
    /// names as received (`guard::RawHead`).
    pub raw_names: Option<super::guard::RawNames>,
    /// `$host`: Host header (or absolute-form host) normalised, else the server's first name.
    pub host: String,
    pub server: Arc<Server>,
    pub captures: Option<Captures>,
    /// `set` variables and named captures, indexed by `Var::Slot`.
    pub slots: Vec<Option<String>>,
    pub proxy_host: Arc<str>,
    pub proxy_port: u16,
    /// Inline for the usual single attempt (as a Vec, its first push allocated, per request).
    pub upstream_tries: smallvec::SmallVec<[UpstreamTry; 1]>,
    pub status: u16,
    pub body_bytes_sent: u64,
    pub bytes_sent: u64,
    pub response_headers: Option<HeaderMap>,
    /// The configuration that served the request (the location's, else the server's): its
    /// `access_log` list applies when the request is logged.
    pub loc_conf: Option<Arc<crate::plan::LocConf>>,
    /// Map cache and real-IP facts of the edge phases (`runtime::edge`).
    pub edge: super::map::EdgeCtx,
}

/// `$proxy_add_x_forwarded_for` reads it on every request that sets the header (the walkthrough);
/// `realip` too.
pub(crate) const X_FORWARDED_FOR: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-for");

/// Header names are given as `http::header` constants where one exists: a `&str` is parsed into
/// a name on every lookup.
fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&[u8]> {
    h.get(name).map(|v| v.as_bytes())
}

/// Appends `n` in decimal, zero-padded to `width` digits (`format!("{n:0width$}")` without the
/// formatting machinery: `$status`, `$body_bytes_sent` and `$remote_addr` are in every line of
/// the combined log format, and `write!` was 1% of the proxy's CPU samples there).
fn push_decimal(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    out.resize(out.len() + width.saturating_sub(digits.len()), b'0');
    out.extend_from_slice(digits);
}

/// Appends an address as `Display` writes it (IPv4 by hand, the common case).
fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            // Into a stack buffer, then one copy: this is in every combined-format log line.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.extend_from_slice(&text[..len]);
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(out, "{ip}");
        }
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl RequestCtx {
    /// Render `t` and append the bytes to `out`.
    pub fn render_into(&self, t: &Template, out: &mut Vec<u8>) {
        for seg in &t.segments {
            match seg {
                Segment::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Segment::Var(v) => self.var_into(v, out),
            }
        }
    }

    /// Render `t` to a fresh buffer.
    pub fn render(&self, t: &Template) -> Vec<u8> {
        if let Some(lit) = t.as_literal() {
            return lit.as_bytes().to_vec();
        }
        let mut out = Vec::with_capacity(64);
        self.render_into(t, &mut out);
        out
    }

    /// `$server_name`: the server's primary (first) name, as nginx.
    pub fn server_name(&self) -> &str {
        match self.server.names.first() {
            Some(crate::plan::ServerName::Exact(n)) => n,
            Some(crate::plan::ServerName::LeadingWildcard(n)) => n,
            Some(crate::plan::ServerName::TrailingWildcard(n)) => n,
            Some(crate::plan::ServerName::Regex(r)) => &r.source,
            None => "",
        }
    }

    /// `$request`: the request line as nginx logs it.
    pub fn request_line(&self) -> String {
        let mut out = Vec::new();
        self.push_request_line(&mut out);
        // Method, target and version are all valid UTF-8 strings.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends `$request`: method, target as the client sent it, version.
    fn push_request_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        let target = self.absolute_target.as_deref().unwrap_or(&self.request_uri);
        out.extend_from_slice(target.as_bytes());
        out.push(b' ');
        out.extend_from_slice(version_str(self.version).as_bytes());
    }

    fn var_into(&self, v: &Var, out: &mut Vec<u8>) {
        use std::io::Write;
        match v {
            Var::Host => out.extend_from_slice(self.host.as_bytes()),
            Var::HttpHeader(name) => self.http_header_into(&self.headers, name, out),
            Var::SentHttpHeader(name) | Var::UpstreamHttpHeader(name) => {
                if let Some(h) = &self.response_headers {
                    self.http_header_into(h, name, out)
                }
            }
            Var::Arg(name) => {
                if let Some(v) = arg(&self.args, name) {
                    out.extend_from_slice(v.as_bytes())
                }
            }
            Var::Cookie(name) => {
                if let Some(v) = cookie(&self.headers, name) {
                    out.extend_from_slice(v)
                }
            }
            Var::RemoteAddr => push_ip(out, self.conn.remote.ip()),
            Var::RealipRemoteAddr => {
                let peer = self.edge.realip_remote.unwrap_or(self.conn.remote);
                let _ = write!(out, "{}", peer.ip());
            }
            Var::RemotePort => {
                let _ = write!(out, "{}", self.conn.remote.port());
            }
            Var::ProxyAddXForwardedFor => {
                let mut first = true;
                for v in self.headers.get_all(X_FORWARDED_FOR) {
                    if !first {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(v.as_bytes());
                    first = false;
                }
                if !first {
                    out.extend_from_slice(b", ");
                }
                let _ = write!(out, "{}", self.conn.remote.ip());
            }
            Var::Scheme => match self.conn.handshake.tls {
                Some(_) => out.extend_from_slice(b"https"),
                None => out.extend_from_slice(b"http"),
            },
            Var::Https => {
                if self.conn.handshake.tls.is_some() {
                    out.extend_from_slice(b"on")
                }
            }
            Var::RequestUri => out.extend_from_slice(self.request_uri.as_bytes()),
            Var::Uri | Var::DocumentUri => out.extend_from_slice(self.uri.as_bytes()),
            Var::Args | Var::QueryString => out.extend_from_slice(self.args.as_bytes()),
            Var::IsArgs => {
                if !self.args.is_empty() {
                    out.push(b'?')
                }
            }
            Var::RequestMethod => out.extend_from_slice(self.method.as_str().as_bytes()),
            Var::Request => self.push_request_line(out),
            Var::RequestLength | Var::RequestBody => {}
            Var::ServerName => out.extend_from_slice(self.server_name().as_bytes()),
            Var::ServerAddr => {
                let _ = write!(out, "{}", self.conn.local.ip());
            }
            Var::ServerPort => {
                let _ = write!(out, "{}", self.conn.local.port());
            }
            Var::ServerProtocol => out.extend_from_slice(version_str(self.version).as_bytes()),
            Var::ProxyHost => out.extend_from_slice(self.proxy_host.as_bytes()),
            Var::ProxyPort => {
                let _ = write!(out, "{}", self.proxy_port);
            }
            Var::ContentType => {
                if let Some(v) = header_str(&self.headers, http::header::CONTENT_TYPE) {
                    out.extend_from_slice(v)
                }
            }
            Var::ContentLength => {
                if let Some(v) = header_str(&self.headers, http::header::CONTENT_LENGTH) {
                    out.extend_from_slice(v)
                }
            }
            Var::Hostname => out.extend_from_slice(hostname().as_bytes()),
            Var::Pid => {
                let _ = write!(out, "{}", std::process::id());
            }
            Var::NginxVersion => out.extend_from_slice(NGINX_VERSION.as_bytes()),
            Var::Msec => {
                let d = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
            }
            Var::TimeLocal => now_text(false, out),
            Var::TimeIso8601 => now_text(true, out),
            Var::RequestTime => {
                let d = self.start.elapsed();
                let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
            }
            Var::Status => push_decimal(out, u64::from(self.status), 3),
            Var::BodyBytesSent => push_decimal(out, self.body_bytes_sent, 1),
            Var::BytesSent => {
                let _ = write!(out, "{}", self.bytes_sent);
            }
            Var::Connection => {
                let _ = write!(out, "{}", self.conn.id);
            }
            Var::ConnectionRequests => {
                let _ = write!(out, "{}", self.conn_requests);
            }
            Var::UpstreamAddr => self.upstream_list(out, |t, o| {
                let _ = write!(o, "{}", t.addr);
            }),
            Var::UpstreamStatus => self.upstream_list(out, |t, o| match t.status {
                Some(s) => {
                    let _ = write!(o, "{s}");
                }
                None => o.push(b'-'),
            }),
            Var::UpstreamResponseTime | Var::UpstreamConnectTime | Var::UpstreamHeaderTime => self
                .upstream_list(out, |t, o| {
                    let _ = write!(o, "{:.3}", t.response_time);
                }),
            Var::RemoteUser => {}
            Var::HttpReferer => {
                if let Some(v) = header_str(&self.headers, http::header::REFERER) {
                    out.extend_from_slice(v)
                }
            }
            Var::HttpUserAgent => {
                if let Some(v) = header_str(&self.headers, http::header::USER_AGENT) {
                    out.extend_from_slice(v)
                }
            }
            Var::ConnectionUpgrade => {
                // The usual `map $http_upgrade $connection_upgrade` result.
                if self.headers.contains_key(http::header::UPGRADE) {
                    out.extend_from_slice(b"upgrade")
                } else {
                    out.extend_from_slice(b"close")
                }
            }
            Var::SslProtocol | Var::SslCipher | Var::SslServerName => {
                if let Some(t) = &self.conn.handshake.tls {
                    match v {
                        Var::SslProtocol => out.extend_from_slice(t.protocol.as_bytes()),
                        Var::SslCipher => out.extend_from_slice(t.cipher.as_bytes()),
                        _ => {
                            if let Some(n) = &t.server_name {
                                out.extend_from_slice(n.as_bytes())
                            }
                        }
                    }
                }
            }
            Var::ProxyProtocolAddr | Var::ProxyProtocolPort => {
                if let Some(src) = self.conn.handshake.proxy_protocol.and_then(|h| h.source) {
                    if matches!(v, Var::ProxyProtocolAddr) {
                        let _ = write!(out, "{}", src.ip());
                    } else {
                        let _ = write!(out, "{}", src.port());
                    }
                }
            }
            Var::Capture(n) => {
                if let Some(s) = self.captures.as_ref().and_then(|c| c.get(*n as usize)) {
                    out.extend_from_slice(s.as_bytes())
                }
            }
            Var::Slot(i) => match self.slots.get(*i as usize) {
                Some(Some(s)) => out.extend_from_slice(s.as_bytes()),
                // A named capture of a `map` regex evaluated earlier in this request.
                _ => {
                    if let Some(s) = self.edge.captured(*i) {
                        out.extend_from_slice(s.as_bytes())
                    }
                }
            },
            Var::Map(i) => super::map::map_into(self, *i, out),
        }
    }

    fn upstream_list(&self, out: &mut Vec<u8>, f: impl Fn(&UpstreamTry, &mut Vec<u8>)) {
        for (i, t) in self.upstream_tries.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            f(t, out);
        }
    }

    /// `$http_NAME`: nginx 1.22 joins `Cookie` with "; " and `X-Forwarded-For` with ", "; any other
    /// header gives its first value.
    fn http_header_into(&self, h: &HeaderMap, name: &str, out: &mut Vec<u8>) {
        let sep: &[u8] = match name {
            "cookie" => b"; ",
            "x-forwarded-for" => b", ",
            _ => {
                if let Some(v) = h.get(name) {
                    out.extend_from_slice(v.as_bytes());
                }
                return;
            }
        };
        for (i, v) in h.get_all(name).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(sep);
            }
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// Store named captures and `$1..$9` from a regex match.
    pub fn set_captures(&mut self, c: Option<(Captures, Vec<(u32, String)>)>) {
        if let Some((caps, named)) = c {
            for (slot, v) in named {
                let i = slot as usize;
                if self.slots.len() <= i {
                    self.slots.resize(i + 1, None);
                }
                self.slots[i] = Some(v);
            }
            self.captures = Some(caps);
        }
    }
}

/// `$arg_NAME`: the raw value of the first argument named NAME (case-insensitive, as nginx).
pub fn arg<'a>(args: &'a str, name: &str) -> Option<&'a str> {
    args.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// `$cookie_NAME`: first cookie named NAME (case-insensitive, as nginx) across `Cookie` headers.
pub fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    for v in h.get_all(http::header::COOKIE) {
        for part in v.as_bytes().split(|&b| b == b';') {
            let part = trim_ascii(part);
            let (k, val) = match memchr::memchr(b'=', part) {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => continue,
            };
            if trim_ascii(k).eq_ignore_ascii_case(name.as_bytes()) {
                return Some(val);
            }
        }
    }
    None
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `$hostname`, read once.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
}

/// Broken-down local time and its UTC offset in seconds.
fn local_tm(t: SystemTime) -> (libc::tm, i64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: tm is plain data; localtime_r only writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    let off = tm.tm_gmtoff;
    (tm, off)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends `$time_local` (or `$time_iso8601` when `iso`) of the current second. Each worker
/// thread formats them once per second, as nginx formats its cached times once per second
/// (`ngx_time_update`): formatting them for every access-log line (`localtime_r` + `format!`)
/// was 2% of the proxy's CPU samples with the combined log at 64 connections (issue 7).
fn now_text(iso: bool, out: &mut Vec<u8>) {
    thread_local! {
        /// (Unix second, `$time_local`, `$time_iso8601`) of that second.
        static NOW: std::cell::RefCell<(u64, String, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new(), String::new())) };
    }
    let t = SystemTime::now();
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    NOW.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != secs {
            *c = (secs, time_local(t), time_iso8601(t));
        }
        out.extend_from_slice(if iso { c.2.as_bytes() } else { c.1.as_bytes() });
    });
}

/// `$time_local`: `27/Nov/2026:23:02:19 +0000`.
pub fn time_local(t: SystemTime) -> String {
    let (tm, off) = local_tm(t);
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} {}{:02}{:02}",
        tm.tm_mday,
        MONTHS[(tm.tm_mon.clamp(0, 11)) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        off / 3600,
        (off % 3600) / 60
    )
}

/// `$time_iso8601`: `2026-11-27T23:02:19+00:00`.
pub fn time_iso8601(t: SystemTime) -> String {
    let (tm, off) = local_tm(t);
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        off / 3600,
        (off % 3600) / 60
    )
}

/// Values for the access log (`None` = nginx's "not found", written as `-`).
impl crate::runtime::log::VarSource for RequestCtx {
    fn var(&self, var: &Var) -> Option<std::borrow::Cow<'_, [u8]>> {
        let mut out = Vec::new();
        self.append_var(var, &mut out)
            .then_some(std::borrow::Cow::Owned(out))
    }

    fn append_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        // The combined format's request headers: one lookup, not a check and then a get.
        let header = match var {
            Var::HttpReferer => Some(http::header::REFERER),
            Var::HttpUserAgent => Some(http::header::USER_AGENT),
            _ => None,
        };
        if let Some(name) = header {
            let Some(v) = header_str(&self.headers, name) else {
                return false;
            };
            out.extend_from_slice(v);
            return true;
        }
        let found = match var {
            Var::HttpHeader(n) => self.headers.contains_key(&**n),
            Var::SentHttpHeader(n) | Var::UpstreamHttpHeader(n) => self
                .response_headers
                .as_ref()
                .is_some_and(|h| h.contains_key(&**n)),
            Var::Arg(n) => arg(&self.args, n).is_some(),
            Var::Cookie(n) => cookie(&self.headers, n).is_some(),
            Var::ContentType => self.headers.contains_key(http::header::CONTENT_TYPE),
            Var::ContentLength => self.headers.contains_key(http::header::CONTENT_LENGTH),
            Var::UpstreamAddr
            | Var::UpstreamStatus
            | Var::UpstreamResponseTime
            | Var::UpstreamConnectTime
            | Var::UpstreamHeaderTime => !self.upstream_tries.is_empty(),
            Var::RemoteUser
            | Var::Https
            | Var::SslProtocol
            | Var::SslCipher
            | Var::SslServerName => false,
            Var::Capture(n) => self
                .captures
                .as_ref()
                .and_then(|c| c.get(*n as usize))
                .is_some(),
            Var::Slot(i) => matches!(self.slots.get(*i as usize), Some(Some(_))),
            _ => true,
        };
        if found {
            self.var_into(var, out);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_and_addresses_as_display_writes_them() {
        let cases: [(u64, usize); 6] =
            [(0, 1), (7, 3), (200, 3), (1234, 3), (u64::MAX, 1), (10, 1)];
        for (n, width) in cases {
            let mut out = Vec::new();
            super::push_decimal(&mut out, n, width);
            assert_eq!(
                String::from_utf8(out).expect("ascii"),
                format!("{n:0width$}")
            );
        }
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.20.3.4",
            "192.168.100.9",
            "1.99.30.100",
            "::1",
            "2001:db8::5",
        ] {
            let addr: std::net::IpAddr = ip.parse().expect("test address");
            let mut out = Vec::new();
            super::push_ip(&mut out, addr);
            assert_eq!(String::from_utf8(out).expect("ascii"), addr.to_string());
        }
    }
}
