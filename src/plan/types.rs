//! The typed Plan: what `runtime` executes. Built once per (re)load by `plan::compile`; immutable after.
//!
//! Every node that came from a directive keeps its `Span`, so runtime errors can name FILE:LINE too.
//! Inheritance (http → server → location) is already resolved: each `Location` carries its final,
//! merged `LocConf`, the way nginx's merge phase leaves it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::conf::{Level, Span, Text};

use super::template::Template;

#[derive(Debug)]
pub struct Plan {
    pub main: MainConf,
    pub http: Http,
    /// Every file read (for `-T` and reload diagnostics).
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct MainConf {
    /// `None` = `auto` (number of cores). Default 1, as nginx.
    pub worker_processes: Option<usize>,
    pub worker_connections: usize,
    pub pid: PathBuf,
    pub error_logs: Vec<ErrorLog>,
    pub daemon: bool,
    pub master_process: bool,
    /// `user USER [GROUP]`; `None` when not set (nginx's default `nobody` applies when root).
    pub user: Option<(String, Option<String>)>,
    pub worker_rlimit_nofile: Option<u64>,
    pub worker_shutdown_timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorLog {
    /// `None` = stderr.
    pub path: Option<PathBuf>,
    pub level: Level,
    pub span: Option<Span>,
}

#[derive(Debug)]
pub struct Http {
    pub servers: Vec<Arc<Server>>,
    /// Every `listen` address with the servers on it, default server first.
    pub listens: Vec<ListenGroup>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub maps: Vec<Map>,
    pub log_formats: Vec<Arc<LogFormat>>,
    /// Number of per-request variable slots (`set` variables and named captures).
    pub slots: Vec<Arc<str>>,
}

/// One socket address and the servers that listen on it.
#[derive(Debug)]
pub struct ListenGroup {
    pub addr: ListenAddr,
    pub opts: ListenOpts,
    /// Indexes into `Http::servers`; `default_server` is the one flagged or else the first.
    pub servers: Vec<usize>,
    pub default_server: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenOpts {
    pub default_server: bool,
    pub ssl: bool,
    pub http2: bool,
    pub proxy_protocol: bool,
    pub reuseport: bool,
    pub backlog: Option<i32>,
    pub ipv6only: Option<bool>,
    pub span: Option<Span>,
}

#[derive(Debug)]
pub struct Server {
    pub names: Vec<ServerName>,
    pub listens: Vec<(ListenAddr, ListenOpts)>,
    /// Top-level locations in config order (nested ones hang below).
    pub locations: Vec<Arc<Location>>,
    /// Named locations (`@name`), reachable only by internal redirect.
    pub named: Vec<Arc<Location>>,
    /// Server-level configuration, used when no location matches and for server-level phases.
    pub conf: Arc<LocConf>,
    /// `rewrite`/`set`/`if`/`return` at server level, run before location matching.
    pub rewrites: Vec<RewriteOp>,
    pub tls: Option<Arc<ServerTls>>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ServerName {
    Exact(String),
    /// `*.example.com` (stored as `.example.com` suffix) or `.example.com` (also matches the bare name).
    LeadingWildcard(String),
    /// `www.example.*` (stored as prefix `www.example.`).
    TrailingWildcard(String),
    Regex(Regex),
}

/// A regex compiled at config time (PCRE2, as nginx), with the names of its captures.
#[derive(Clone)]
pub struct Regex {
    pub source: Arc<str>,
    pub caseless: bool,
    pub compiled: Arc<pcre2::bytes::Regex>,
    /// For each named capture: (capture index, variable slot).
    pub named: Vec<(usize, u32)>,
}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Regex({:?}{})",
            self.source,
            if self.caseless { ", i" } else { "" }
        )
    }
}

/// A location: 72 bytes plus its `Arc`, since a file may hold 100,000 of them. Paths up to 22
/// bytes live inline ([`Text`]); the regex of a regex location is boxed (the rarer, larger case).
#[derive(Debug)]
pub struct Location {
    pub matcher: LocMatch,
    /// Shared with every sibling whose body compiles to the same thing (see [`LocConf`]).
    pub conf: Arc<LocConf>,
    pub children: Box<[Arc<Location>]>,
    pub span: Span,
}

#[derive(Debug)]
pub enum LocMatch {
    /// `location = /x`
    Exact(Text),
    /// `location /x` (`no_regex` = `^~`)
    Prefix { path: Text, no_regex: bool },
    /// `location ~ re` / `~* re`
    Regex(Box<Regex>),
    /// `location @name`
    Named(Text),
}

/// Everything that applies to a request once its location is chosen, already merged: the level's
/// own rewrite steps, and its merged settings.
///
/// The settings are shared: every location that sets nothing of its own (only rewrite-module
/// steps such as `return`, or nothing at all) points at one `LocSettings` per enclosing level,
/// so 100,000 `location = /x { return 200; }` hold one copy of the inherited settings, not
/// 100,000. Field reads go through `Deref` (`conf.proxy`, `conf.client`, ...).
///
/// A whole `LocConf` is shared too: siblings that set nothing of their own and whose rewrite
/// steps are plain (no steps, or one `return CODE` with no text or a constant one) point at one
/// `LocConf` per distinct body, whose steps keep the spans of the first of them (the runtime
/// never reads a step's span; each `Location` keeps its own).
#[derive(Debug, Default)]
pub struct LocConf {
    /// The rewrite-module steps of this level (nginx does not inherit them).
    pub rewrites: Vec<RewriteOp>,
    pub settings: Arc<LocSettings>,
}

impl std::ops::Deref for LocConf {
    type Target = LocSettings;
    fn deref(&self) -> &LocSettings {
        &self.settings
    }
}

impl From<LocSettings> for LocConf {
    fn from(settings: LocSettings) -> LocConf {
        LocConf {
            rewrites: Vec::new(),
            settings: Arc::new(settings),
        }
    }
}

/// The merged settings of a level (everything but its rewrite steps); see [`LocConf`].
#[derive(Debug, Default)]
pub struct LocSettings {
    pub proxy: Option<ProxyConf>,
    pub access: Vec<AccessRule>,
    pub add_headers: Vec<AddHeader>,
    pub error_pages: Vec<ErrorPage>,
    pub access_logs: Vec<AccessLog>,
    pub error_logs: Vec<ErrorLog>,
    pub internal: bool,
    pub root: Option<Template>,
    pub alias: Option<Template>,
    pub index: Vec<Template>,
    pub try_files: Option<Vec<Template>>,
    pub client: ClientLimits,
    pub server_tokens: ServerTokens,
    pub default_type: String,
    pub merge_slashes: bool,
    pub absolute_redirect: bool,
    pub port_in_redirect: bool,
    pub server_name_in_redirect: bool,
    pub real_ip: Option<Arc<RealIp>>,
    pub stub_status: bool,
    pub metrics: bool,
    /// Index into `Http::servers` of the server this belongs to.
    pub server: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerTokens {
    #[default]
    On,
    Off,
    Build,
}

#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// 0 = unlimited.
    pub max_body_size: u64,
    pub body_buffer_size: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    /// `None` = keepalive disabled (`keepalive_timeout 0`).
    pub keepalive_timeout: Option<Duration>,
    pub keepalive_requests: u64,
    /// `client_header_buffer_size`: the read buffer a request head starts in.
    pub header_buffer_size: usize,
    /// `large_client_header_buffers NUMBER SIZE`.
    pub large_header_buffers: (usize, usize),
    pub underscores_in_headers: bool,
    pub ignore_invalid_headers: bool,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_body_size: 1024 * 1024,
            body_buffer_size: 16 * 1024,
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            keepalive_timeout: Some(Duration::from_secs(75)),
            keepalive_requests: 1000,
            header_buffer_size: 1024,
            large_header_buffers: (4, 8 * 1024),
            underscores_in_headers: false,
            ignore_invalid_headers: true,
        }
    }
}

#[derive(Debug)]
pub struct ProxyConf {
    pub pass: ProxyPass,
    /// Final header list after nginx's inheritance, with nginx's defaults folded in
    /// (`Host $proxy_host`, `Connection close`); an empty value means "do not send".
    pub set_headers: Arc<Vec<(http::HeaderName, Template)>>,
    /// The spelling of each `set_headers` name as written in the config (nginx's own for the
    /// defaults), same order; nginx sends names as written. Shorter when built by hand: the rest
    /// go up Title-Cased.
    pub set_header_names: Arc<Vec<Arc<str>>>,
    pub http_version: HttpVersion,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub next_upstream: NextUpstream,
    pub next_upstream_tries: u32,
    /// `None` = unlimited.
    pub next_upstream_timeout: Option<Duration>,
    pub buffering: bool,
    pub request_buffering: bool,
    pub buffer_size: usize,
    pub redirect: ProxyRedirect,
    pub hide_headers: Vec<http::HeaderName>,
    pub pass_headers: Vec<http::HeaderName>,
    pub ignore_headers: Vec<String>,
    pub intercept_errors: bool,
    pub pass_request_headers: bool,
    pub pass_request_body: bool,
    pub set_body: Option<Template>,
    pub method: Option<Template>,
    pub ssl_server_name: bool,
    pub ssl_name: Option<Template>,
    pub ssl_verify: bool,
    pub ssl_trusted_certificate: Option<PathBuf>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    Http10,
    Http11,
}

#[derive(Debug)]
pub enum ProxyPass {
    /// `proxy_pass http://name[/uri]` where `name` is an upstream group or a host:port resolved at load.
    Static {
        scheme: Scheme,
        upstream: Arc<Upstream>,
        /// The URI part, if any (`proxy_pass http://u/x/` → `Some("/x/")`).
        uri: Option<String>,
        /// `$proxy_host`: the name as written (with `:port` unless default for the scheme).
        proxy_host: Arc<str>,
        proxy_port: u16,
    },
    /// `proxy_pass` containing variables: evaluated per request, used as is.
    Dynamic(Template),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// `proxy_next_upstream` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextUpstream {
    pub error: bool,
    pub timeout: bool,
    pub invalid_header: bool,
    pub non_idempotent: bool,
    /// HTTP statuses that count as failures and allow a retry (500, 502, 503, 504, 403, 404, 429).
    pub statuses: &'static [u16],
    pub status_mask: u16,
}

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            non_idempotent: false,
            statuses: &[],
            status_mask: 0,
        }
    }
}

#[derive(Debug, Default)]
pub enum ProxyRedirect {
    #[default]
    Default,
    Off,
    Rules(Vec<(RedirectFrom, Template)>),
}

#[derive(Debug)]
pub enum RedirectFrom {
    Prefix(Template),
    Regex(Regex),
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub method: Balance,
    pub servers: Vec<UpstreamServer>,
    pub keepalive: Option<usize>,
    pub keepalive_requests: u64,
    pub keepalive_timeout: Duration,
    pub keepalive_time: Duration,
    /// True for groups made implicitly by `proxy_pass http://host:port` (nginx never marks their
    /// single peer failed, and they have no `upstream` block).
    pub implicit: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Balance {
    RoundRobin,
    LeastConn,
    IpHash,
    Hash { key: Template, consistent: bool },
    Random { two: bool, least_conn: bool },
}

#[derive(Clone, Debug)]
pub struct UpstreamServer {
    /// As written, e.g. `host.docker.internal:5001` (for `$upstream_addr` and error messages).
    pub name: String,
    /// Every address the name resolved to at load; each becomes a peer, as in nginx.
    pub addrs: Vec<PeerAddr>,
    pub weight: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub backup: bool,
    pub down: bool,
    /// 0 = unlimited.
    pub max_conns: u32,
    pub resolve: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One step of nginx's rewrite module, run in order in the rewrite phase.
#[derive(Debug)]
pub enum RewriteOp {
    Rewrite {
        /// Boxed, as `If`'s condition: they are the large variants, and a `return` (the most
        /// common step) should not pay for them in every location.
        regex: Box<Regex>,
        replacement: Template,
        flag: RewriteFlag,
        span: Span,
    },
    Return {
        code: u16,
        body: Option<Template>,
        span: Span,
    },
    Set {
        slot: u32,
        value: Template,
        span: Span,
    },
    If {
        cond: Box<Condition>,
        /// Directives inside the `if` block.
        ops: Vec<RewriteOp>,
        /// Location-level config inside the `if` (e.g. `proxy_pass` in `if`), if any.
        conf: Option<Arc<LocConf>>,
        span: Span,
    },
    Break,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteFlag {
    None,
    Last,
    Break,
    Redirect,
    Permanent,
}

#[derive(Debug)]
pub enum Condition {
    /// `if ($var)`: true unless empty or "0".
    Var(Template),
    Eq(Template, Template, bool),
    Regex(Template, Regex, bool),
    File(FileTest, Template, bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTest {
    File,
    Dir,
    Exists,
    Exec,
}

#[derive(Clone, Debug)]
pub struct AccessRule {
    pub allow: bool,
    pub from: AccessFrom,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum AccessFrom {
    All,
    Unix,
    Cidr { addr: std::net::IpAddr, prefix: u8 },
}

#[derive(Clone, Debug)]
pub struct AddHeader {
    pub name: http::HeaderName,
    pub value: Template,
    pub always: bool,
}

#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    /// `=` alone: `Some(None)` (use the target's status); `=CODE`: `Some(Some(code))`.
    pub overwrite: Option<Option<u16>>,
    pub target: Template,
}

#[derive(Clone, Debug)]
pub struct AccessLog {
    /// `None` = `access_log off`.
    pub path: Option<Template>,
    pub format: Arc<LogFormat>,
    pub buffer: Option<usize>,
    pub flush: Option<Duration>,
    pub condition: Option<Template>,
}

#[derive(Clone, Debug)]
pub struct LogFormat {
    pub name: String,
    pub escape: LogEscape,
    pub template: Template,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEscape {
    Default,
    Json,
    None,
}

#[derive(Debug)]
pub struct Map {
    pub source: Template,
    pub hostnames: bool,
    pub default: Option<Template>,
    pub exact: Vec<(String, Template)>,
    pub regexes: Vec<(Regex, Template)>,
    pub span: Span,
}

#[derive(Debug)]
pub struct RealIp {
    pub from: Vec<AccessFrom>,
    pub header: RealIpHeader,
    pub recursive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RealIpHeader {
    XRealIp,
    XForwardedFor,
    ProxyProtocol,
    Other(http::HeaderName),
}

#[derive(Debug)]
pub struct ServerTls {
    /// (certificate chain path, key path) pairs, in config order.
    pub certificates: Vec<(PathBuf, PathBuf)>,
    pub protocols: Vec<String>,
    pub ciphers: Option<String>,
    pub session_timeout: Duration,
    /// `ssl_prefer_server_ciphers` (rustls: `ignore_client_order`).
    pub prefer_server_ciphers: bool,
    /// `http2 on` in this server (nginx 1.25.1+): offer ALPN `h2` even without `listen ... http2`.
    pub http2: bool,
}
