//! Variables and templates: nginx's built-in variable names, per-request slots (`set` variables and
//! named regex captures), `map` outputs, and the compiler from `"$host:${server_port}"` to a
//! [`Template`]. Regexes are compiled here too, since compiling one defines its named captures.
//!
//! As in nginx, a user variable may be used before the `set` or regex that defines it; a name that is
//! never defined is `unknown "foo" variable`, reported after the whole configuration was read.

use std::collections::HashMap;
use std::sync::Arc;

use super::template::{Segment, Template, Var};
use super::types::Regex;

/// nginx variables that nginx-rs does not provide (used in a template: "not supported" error).
const UNSUPPORTED_VARS: &[&str] = &[
    "binary_remote_addr",
    "request_id",
    "request_filename",
    "realpath_root",
    "document_root",
    "limit_rate",
    "request_completion",
    "upstream_cache_status",
    "upstream_bytes_received",
    "upstream_bytes_sent",
    "upstream_response_length",
    "gzip_ratio",
    "connection_time",
    "pipe",
    "tcp_info",
    "date_local",
    "date_gmt",
    "invalid_referer",
    "secure_link",
    "secure_link_expires",
    "ssl_client_cert",
    "ssl_client_verify",
    "ssl_client_s_dn",
    "ssl_session_id",
    "http2",
    "request_body_file",
    "upstream_queue_time",
    "upstream_trailer_",
    "sent_trailer_",
    "upstream_cookie_",
    "geoip_country_code",
    "uid_got",
    "uid_set",
    "server_https",
];

/// Maps a built-in name to its [`Var`]; `None` if it is not a built-in.
pub fn builtin(name: &str) -> Option<Var> {
    let lower = name.to_ascii_lowercase();
    let n = lower.as_str();
    let hdr = |rest: &str| -> Arc<str> { rest.replace('_', "-").into() };
    if let Some(rest) = n.strip_prefix("http_") {
        return Some(match rest {
            "referer" => Var::HttpReferer,
            "user_agent" => Var::HttpUserAgent,
            _ => Var::HttpHeader(hdr(rest)),
        });
    }
    if let Some(rest) = n.strip_prefix("sent_http_") {
        return Some(Var::SentHttpHeader(hdr(rest)));
    }
    if let Some(rest) = n.strip_prefix("upstream_http_") {
        return Some(Var::UpstreamHttpHeader(hdr(rest)));
    }
    if let Some(rest) = name.strip_prefix("arg_") {
        return Some(Var::Arg(rest.into()));
    }
    if let Some(rest) = name.strip_prefix("cookie_") {
        return Some(Var::Cookie(rest.into()));
    }
    Some(match n {
        "host" => Var::Host,
        "remote_addr" => Var::RemoteAddr,
        "remote_port" => Var::RemotePort,
        "realip_remote_addr" => Var::RealipRemoteAddr,
        "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
        "scheme" => Var::Scheme,
        "https" => Var::Https,
        "request_uri" => Var::RequestUri,
        "uri" => Var::Uri,
        "document_uri" => Var::DocumentUri,
        "args" => Var::Args,
        "query_string" => Var::QueryString,
        "is_args" => Var::IsArgs,
        "request_method" => Var::RequestMethod,
        "request" => Var::Request,
        "request_length" => Var::RequestLength,
        "request_body" => Var::RequestBody,
        "server_name" => Var::ServerName,
        "server_addr" => Var::ServerAddr,
        "server_port" => Var::ServerPort,
        "server_protocol" => Var::ServerProtocol,
        "proxy_host" => Var::ProxyHost,
        "proxy_port" => Var::ProxyPort,
        "content_type" => Var::ContentType,
        "content_length" => Var::ContentLength,
        "hostname" => Var::Hostname,
        "pid" => Var::Pid,
        "nginx_version" => Var::NginxVersion,
        "msec" => Var::Msec,
        "time_local" => Var::TimeLocal,
        "time_iso8601" => Var::TimeIso8601,
        "request_time" => Var::RequestTime,
        "status" => Var::Status,
        "body_bytes_sent" => Var::BodyBytesSent,
        "bytes_sent" => Var::BytesSent,
        "connection" => Var::Connection,
        "connection_requests" => Var::ConnectionRequests,
        "upstream_addr" => Var::UpstreamAddr,
        "upstream_status" => Var::UpstreamStatus,
        "upstream_response_time" => Var::UpstreamResponseTime,
        "upstream_connect_time" => Var::UpstreamConnectTime,
        "upstream_header_time" => Var::UpstreamHeaderTime,
        "remote_user" => Var::RemoteUser,
        "ssl_protocol" => Var::SslProtocol,
        "ssl_cipher" => Var::SslCipher,
        "ssl_server_name" => Var::SslServerName,
        "proxy_protocol_addr" => Var::ProxyProtocolAddr,
        "proxy_protocol_port" => Var::ProxyProtocolPort,
        _ => return None,
    })
}

fn unsupported(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    UNSUPPORTED_VARS.iter().any(|u| {
        if u.ends_with('_') {
            n.starts_with(u)
        } else {
            n == *u
        }
    })
}

/// The variable namespace of one `http` block while it is compiled.
#[derive(Debug, Default)]
pub struct Vars {
    /// Slot names in slot order (`Http::slots`).
    pub slots: Vec<Arc<str>>,
    slot_index: HashMap<String, u32>,
    /// Which slots something defined (a `set` or a named capture).
    defined: Vec<bool>,
    /// `map` output variable name → map index (registered before the walk).
    maps: HashMap<String, u32>,
}

impl Vars {
    pub fn add_map(&mut self, name: &str, index: u32) {
        self.maps.entry(name.to_ascii_lowercase()).or_insert(index);
    }

    pub fn is_map(&self, name: &str) -> bool {
        self.maps.contains_key(&name.to_ascii_lowercase())
    }

    fn slot(&mut self, name: &str) -> u32 {
        let key = name.to_ascii_lowercase();
        if let Some(&i) = self.slot_index.get(&key) {
            return i;
        }
        let i = self.slots.len() as u32;
        self.slots.push(name.into());
        self.defined.push(false);
        self.slot_index.insert(key, i);
        i
    }

    /// A `set $name` or named capture: defines (or reuses) the slot for `name`.
    pub fn define(&mut self, name: &str) -> Var {
        if let Some(v) = self.lookup_fixed(name) {
            return v;
        }
        let i = self.slot(name);
        if let Some(d) = self.defined.get_mut(i as usize) {
            *d = true;
        }
        Var::Slot(i)
    }

    fn lookup_fixed(&self, name: &str) -> Option<Var> {
        if let Some(&m) = self.maps.get(&name.to_ascii_lowercase()) {
            return Some(Var::Map(m));
        }
        None
    }

    /// Resolves a variable reference. Unknown names get a slot that must be defined by the end.
    pub fn reference(&mut self, name: &str) -> Result<Var, String> {
        if let Some(v) = self.lookup_fixed(name) {
            return Ok(v);
        }
        if let Some(v) = builtin(name) {
            return Ok(v);
        }
        if unsupported(name) {
            return Err(format!("variable \"${name}\" is not supported by nginx-rs"));
        }
        Ok(Var::Slot(self.slot(name)))
    }

    /// The first slot that was referenced but never defined (nginx's `unknown "x" variable`).
    pub fn first_undefined(&self) -> Option<&str> {
        self.defined
            .iter()
            .position(|d| !d)
            .and_then(|i| self.slots.get(i))
            .map(|s| &**s)
    }

    /// Compiles a value with variables (`ngx_http_script_compile` syntax). Errors are nginx's.
    pub fn template(&mut self, src: &str) -> Result<Template, String> {
        let b = src.as_bytes();
        let mut segs: Vec<Segment> = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                // Copy up to the next '$' (a valid UTF-8 boundary since '$' is ASCII).
                let next = src[i..].find('$').map_or(b.len(), |p| i + p);
                lit.push_str(&src[i..next]);
                i = next;
                continue;
            }
            i += 1;
            if i < b.len() && (b'1'..=b'9').contains(&b[i]) {
                flush(&mut lit, &mut segs);
                segs.push(Segment::Var(Var::Capture(b[i] - b'0')));
                i += 1;
                continue;
            }
            let bracket = i < b.len() && b[i] == b'{';
            if bracket {
                i += 1;
                if i == b.len() {
                    return Err("invalid variable name".into());
                }
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &src[start..i];
            if bracket {
                if i < b.len() && b[i] == b'}' {
                    i += 1;
                } else {
                    return Err(format!(
                        "the closing bracket in \"{name}\" variable is missing"
                    ));
                }
            }
            if name.is_empty() {
                return Err("invalid variable name".into());
            }
            flush(&mut lit, &mut segs);
            segs.push(Segment::Var(self.reference(name)?));
        }
        flush(&mut lit, &mut segs);
        Ok(Template { segments: segs })
    }

    /// Compiles a PCRE2 regex (nginx's dialect); named captures become defined variables.
    /// The error is nginx's: `pcre2_compile() failed: MSG in "RE" at "REST"`.
    pub fn regex(&mut self, source: &str, caseless: bool) -> Result<Regex, String> {
        let compiled = pcre2::bytes::RegexBuilder::new()
            .caseless(caseless)
            .utf(false)
            .jit_if_available(true)
            .build(source)
            .map_err(|e| pcre_message(source, &e))?;
        let mut named = Vec::new();
        for (i, n) in compiled.capture_names().iter().enumerate() {
            if let Some(n) = n {
                if let Var::Slot(s) = self.define(n) {
                    named.push((i, s));
                }
            }
        }
        Ok(Regex {
            source: source.into(),
            caseless,
            compiled: Arc::new(compiled),
            named,
        })
    }
}

fn flush(lit: &mut String, segs: &mut Vec<Segment>) {
    if !lit.is_empty() {
        segs.push(Segment::Literal(std::mem::take(lit).into()));
    }
}

/// nginx: `pcre2_compile() failed: missing closing parenthesis in "(a" at ""`.
fn pcre_message(source: &str, e: &pcre2::Error) -> String {
    let text = e.to_string();
    // pcre2's Display is "PCRE2: error compiling pattern at offset N: MESSAGE".
    let (offset, msg) = match text.split_once(" at offset ") {
        Some((_, rest)) => match rest.split_once(": ") {
            Some((off, msg)) => (off.parse::<usize>().ok(), msg.to_string()),
            None => (None, text.clone()),
        },
        None => (None, text.clone()),
    };
    // nginx names the rest of the pattern from the error offset, unless the error is at its end.
    match offset
        .and_then(|o| source.get(o..))
        .filter(|rest| !rest.is_empty())
    {
        Some(at) => format!("pcre2_compile() failed: {msg} in \"{source}\" at \"{at}\""),
        None => format!("pcre2_compile() failed: {msg} in \"{source}\""),
    }
}

/// Does `s` contain a variable reference (nginx's `ngx_http_script_variables_count` > 0)?
pub fn has_vars(s: &str) -> bool {
    s.contains('$')
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let mut v = Vars::default();
        let t = v.template("$host:${server_port}x").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Var(Var::Host),
                Segment::Literal(":".into()),
                Segment::Var(Var::ServerPort),
                Segment::Literal("x".into()),
            ]
        );
        let t = v.template("/a/$1/$http_x_real_ip").unwrap();
        assert_eq!(t.segments[1], Segment::Var(Var::Capture(1)));
        assert_eq!(
            t.segments[3],
            Segment::Var(Var::HttpHeader("x-real-ip".into()))
        );
        assert_eq!(v.template("a$").unwrap_err(), "invalid variable name");
        assert_eq!(
            v.template("${host").unwrap_err(),
            "the closing bracket in \"host\" variable is missing"
        );
        assert!(v.template("$request_id").is_err());
    }

    #[test]
    fn user_variables_must_be_defined() {
        let mut v = Vars::default();
        v.template("$foo").unwrap();
        assert_eq!(v.first_undefined(), Some("foo"));
        v.define("foo");
        assert_eq!(v.first_undefined(), None);
    }

    #[test]
    fn regexes() {
        let mut v = Vars::default();
        let r = v.regex("^/(?<name>[a-z]+)$", false).unwrap();
        assert_eq!(r.named.len(), 1);
        assert_eq!(
            v.template("$name").unwrap().segments,
            vec![Segment::Var(Var::Slot(0))]
        );
        let e = v.regex("(a", false).unwrap_err();
        assert!(
            e.starts_with("pcre2_compile() failed: missing closing parenthesis in \"(a\""),
            "{e}"
        );
    }
}
