//! The checked-but-unmerged configuration the walk builds: one [`Lvl`] per `http`, `server`,
//! `location` and `if` block, with `None` for "not set here" (nginx's `NGX_CONF_UNSET`). The merge
//! in `finish.rs` fills the gaps from the enclosing level, the way nginx's merge phase does after
//! the whole file was read (so an `http`-level directive after a `server` still applies to it).

use std::path::PathBuf;
use std::time::Duration;

use crate::conf::Span;

use super::template::Template;
use super::types::*;
use super::values::ProxyUrl;

/// `proxy_pass` as written.
#[derive(Clone, Debug)]
pub enum RawPass {
    Static(ProxyUrl),
    Dynamic(Template),
}

/// `proxy_redirect` as written (cloneable, unlike the Plan type).
#[derive(Clone, Debug)]
pub enum RawRedirect {
    Default,
    Off,
    Rules(Vec<(RawRedirectFrom, Template)>),
}

#[derive(Clone, Debug)]
pub enum RawRedirectFrom {
    Prefix(Template),
    Regex(Regex),
}

/// Settings of one level. Every field is "set at this level" or `None`.
#[derive(Clone, Debug, Default)]
pub struct Lvl {
    /// Something other than a rewrite-module directive was set here (for `if` blocks).
    pub touched: bool,
    pub proxy_pass: Option<(RawPass, Span)>,
    pub proxy_set_header: Option<Vec<(http::HeaderName, Template)>>,
    /// The names of `proxy_set_header` as written (parallel to `proxy_set_header`).
    pub proxy_set_header_names: Option<Vec<std::sync::Arc<str>>>,
    pub proxy_http_version: Option<HttpVersion>,
    pub proxy_connect_timeout: Option<Duration>,
    pub proxy_read_timeout: Option<Duration>,
    pub proxy_send_timeout: Option<Duration>,
    pub proxy_next_upstream: Option<NextUpstream>,
    pub proxy_next_upstream_tries: Option<u32>,
    pub proxy_next_upstream_timeout: Option<Duration>,
    pub proxy_buffering: Option<bool>,
    pub proxy_request_buffering: Option<bool>,
    pub proxy_buffer_size: Option<usize>,
    pub proxy_buffers: Option<(usize, usize)>,
    pub proxy_busy_buffers_size: Option<usize>,
    /// `None` = not set; `Some(Default|Off)` or rules accumulated.
    pub proxy_redirect: Option<RawRedirect>,
    pub proxy_hide_header: Option<Vec<http::HeaderName>>,
    pub proxy_pass_header: Option<Vec<http::HeaderName>>,
    pub proxy_ignore_headers: Option<Vec<String>>,
    pub proxy_intercept_errors: Option<bool>,
    pub proxy_pass_request_headers: Option<bool>,
    pub proxy_pass_request_body: Option<bool>,
    pub proxy_set_body: Option<Template>,
    pub proxy_method: Option<Template>,
    pub proxy_ssl_server_name: Option<bool>,
    pub proxy_ssl_name: Option<Template>,
    pub proxy_ssl_verify: Option<bool>,
    pub proxy_ssl_verify_depth: Option<u64>,
    pub proxy_ssl_trusted_certificate: Option<PathBuf>,
    pub proxy_ssl_protocols: Option<Vec<String>>,
    pub proxy_ssl_ciphers: Option<String>,
    pub proxy_ssl_session_reuse: Option<bool>,

    pub add_headers: Option<Vec<AddHeader>>,
    pub access: Option<Vec<AccessRule>>,
    pub error_pages: Option<Vec<ErrorPage>>,
    pub access_logs: Option<Vec<AccessLog>>,
    pub error_logs: Option<Vec<ErrorLog>>,
    pub root: Option<(Template, Span)>,
    pub alias: Option<(Template, Span)>,
    pub index: Option<Vec<Template>>,
    pub try_files: Option<Vec<Template>>,

    pub client_max_body_size: Option<u64>,
    pub client_body_buffer_size: Option<usize>,
    pub client_header_buffer_size: Option<usize>,
    pub client_header_timeout: Option<Duration>,
    pub client_body_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub keepalive_timeout: Option<Option<Duration>>,
    pub keepalive_requests: Option<u64>,
    pub keepalive_time: Option<Duration>,
    pub large_client_header_buffers: Option<(usize, usize)>,
    pub underscores_in_headers: Option<bool>,
    pub ignore_invalid_headers: Option<bool>,
    pub merge_slashes: Option<bool>,
    pub server_tokens: Option<ServerTokens>,
    pub default_type: Option<String>,
    pub types: Option<Vec<(String, String)>>,
    pub sendfile: Option<bool>,
    pub tcp_nodelay: Option<bool>,
    pub tcp_nopush: Option<bool>,
    pub absolute_redirect: Option<bool>,
    pub port_in_redirect: Option<bool>,
    pub server_name_in_redirect: Option<bool>,
    pub resolver: Option<Vec<String>>,
    pub resolver_timeout: Option<Duration>,

    pub real_ip_from: Option<Vec<AccessFrom>>,
    pub real_ip_header: Option<RealIpHeader>,
    pub real_ip_recursive: Option<bool>,
    pub stub_status: bool,
    /// `metrics;` (nginx-rs): Prometheus text of the status counters.
    pub metrics: bool,
    pub internal: bool,
    pub rewrite_log: Option<bool>,
    pub uninitialized_variable_warn: Option<bool>,

    pub ssl_certificate: Option<Vec<(PathBuf, Span)>>,
    pub ssl_certificate_key: Option<Vec<(PathBuf, Span)>>,
    pub ssl_protocols: Option<Vec<String>>,
    pub ssl_ciphers: Option<String>,
    pub ssl_prefer_server_ciphers: Option<bool>,
    pub ssl_session_cache: Option<Vec<String>>,
    pub ssl_session_timeout: Option<Duration>,
    pub ssl_session_tickets: Option<bool>,
    pub http2: Option<bool>,
}

/// A rewrite-module step before merging (an `if` keeps its own raw level).
#[derive(Debug)]
pub enum RawOp {
    Op(RewriteOp),
    If {
        cond: Box<Condition>,
        ops: Vec<RawOp>,
        lvl: Box<Lvl>,
        span: Span,
    },
}

#[derive(Debug)]
pub struct RawLoc {
    pub matcher: LocMatch,
    /// Allocated on the first setting (a `Lvl` is large, and most locations set little: a
    /// 300,000-line file of `location { return ...; }` must not hold one per location).
    pub lvl: Option<Box<Lvl>>,
    pub ops: Vec<RawOp>,
    pub children: Vec<RawLoc>,
    pub span: Span,
    /// A plain body (no settings, no children, plain rewrite steps: see `plan::LocConf`) is not
    /// kept here but interned in the walker: 1 + its index in `Walker::plain` (0: not plain).
    pub plain: u32,
}

/// A plain body: no rewrite steps (`None`), or one `return CODE [constant text]`.
pub type PlainKey = Option<(u16, Option<Box<str>>)>;

/// The key of a body that can be interned, if it is plain.
pub fn plain_key(ops: &[RawOp]) -> Option<PlainKey> {
    match ops {
        [] => Some(None),
        [RawOp::Op(RewriteOp::Return { code, body, .. })] => match body
            .as_ref()
            .map(|t| t.segments.as_slice())
        {
            None => Some(Some((*code, None))),
            Some([super::template::Segment::Literal(s)]) => Some(Some((*code, Some((**s).into())))),
            Some(_) => None,
        },
        _ => None,
    }
}

/// The rewrite steps of an interned plain body (`span`: where the first of them was written).
pub fn plain_ops(key: &PlainKey, span: &Span) -> Vec<RewriteOp> {
    match key {
        None => Vec::new(),
        Some((code, body)) => vec![RewriteOp::Return {
            code: *code,
            body: body.as_deref().map(Template::literal),
            span: span.clone(),
        }],
    }
}

impl RawLoc {
    /// The name as written (without its modifier), for messages.
    pub fn name(&self) -> &str {
        match &self.matcher {
            LocMatch::Exact(x) | LocMatch::Named(x) => x,
            LocMatch::Prefix { path, .. } => path,
            LocMatch::Regex(r) => &r.source,
        }
    }
}

#[derive(Debug)]
pub struct RawServer {
    pub names: Vec<ServerName>,
    pub listens: Vec<(ListenAddr, ListenOpts)>,
    pub lvl: Lvl,
    pub ops: Vec<RawOp>,
    pub locations: Vec<RawLoc>,
    pub span: Span,
}

#[derive(Debug)]
pub struct RawUpstream {
    pub name: String,
    pub method: Option<(Balance, Span)>,
    pub servers: Vec<UpstreamServer>,
    pub keepalive: Option<usize>,
    pub keepalive_requests: Option<u64>,
    pub keepalive_timeout: Option<Duration>,
    pub keepalive_time: Option<Duration>,
    pub zone: Option<String>,
    /// Made by `proxy_pass http://host:port` rather than an `upstream` block.
    pub implicit: bool,
    /// For implicit groups: the port from `proxy_pass`, and whether it was written.
    pub port: u16,
    pub port_written: bool,
    pub span: Span,
}
