//! Compiled variable templates: `"$host:$server_port"` becomes literal and variable segments once, at
//! config time, so the request path never parses a string.

use std::sync::Arc;

/// A variable nginx-rs knows. Names are resolved at compile time; an unknown name is the
/// `unknown "foo" variable` error.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    Host,
    /// `$http_NAME`: lowercase header name, `_` already turned into `-`.
    HttpHeader(Arc<str>),
    /// `$sent_http_NAME`: a response header, same normalisation.
    SentHttpHeader(Arc<str>),
    /// `$upstream_http_NAME`.
    UpstreamHttpHeader(Arc<str>),
    /// `$arg_NAME` (name as written; matched case-insensitively like nginx).
    Arg(Arc<str>),
    /// `$cookie_NAME`.
    Cookie(Arc<str>),
    RemoteAddr,
    RemotePort,
    RealipRemoteAddr,
    ProxyAddXForwardedFor,
    Scheme,
    Https,
    RequestUri,
    Uri,
    DocumentUri,
    Args,
    QueryString,
    IsArgs,
    RequestMethod,
    Request,
    RequestLength,
    RequestBody,
    ServerName,
    ServerAddr,
    ServerPort,
    ServerProtocol,
    ProxyHost,
    ProxyPort,
    ContentType,
    ContentLength,
    Hostname,
    Pid,
    NginxVersion,
    Msec,
    TimeLocal,
    TimeIso8601,
    RequestTime,
    Status,
    BodyBytesSent,
    BytesSent,
    Connection,
    ConnectionRequests,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamConnectTime,
    UpstreamHeaderTime,
    RemoteUser,
    HttpReferer,
    HttpUserAgent,
    ConnectionUpgrade,
    SslProtocol,
    SslCipher,
    SslServerName,
    ProxyProtocolAddr,
    ProxyProtocolPort,
    /// `$1`..`$9` from the last regex that matched (location, server_name, rewrite, if, map).
    Capture(u8),
    /// A named capture (`(?<name>...)`) or a `set` variable: index into the request's variable slots.
    Slot(u32),
    /// The output of `map` number N in `Http::maps`, evaluated lazily when first read.
    Map(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(Arc<str>),
    Var(Var),
}

/// A string with variables, e.g. the value of `proxy_set_header` or `return`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

impl Template {
    pub fn literal(s: &str) -> Template {
        Template {
            segments: vec![Segment::Literal(s.into())],
        }
    }

    /// `Some(text)` when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(s)] => Some(s),
            _ => None,
        }
    }

    pub fn has_vars(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Var(_)))
    }
}
