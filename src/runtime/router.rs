//! Server selection (listen address, then Host against server_name) and location matching, both
//! exactly in nginx's order. The lookup tables are built once per Plan ([`Router::new`]); the request
//! path only hashes and compares bytes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plan::{self, ListenAddr, LocMatch, Location, Plan, Regex, Server, ServerName};

/// Captures of the last regex that matched: the subject and the byte ranges of groups 0..=9.
#[derive(Clone, Debug, Default)]
pub struct Captures {
    pub subject: String,
    pub groups: Vec<Option<(usize, usize)>>,
}

impl Captures {
    pub fn get(&self, n: usize) -> Option<&str> {
        let (s, e) = (*self.groups.get(n)?)?;
        self.subject.get(s..e)
    }
}

/// Run `re` on `subject`; on a match return its captures and the named-capture slot values.
pub fn regex_match(re: &Regex, subject: &str) -> Option<(Captures, Vec<(u32, String)>)> {
    // pcre2 errors (match limit) count as no match, as a declined location would.
    let caps = re.compiled.captures(subject.as_bytes()).ok()??;
    let mut groups = Vec::with_capacity(caps.len().min(10));
    for i in 0..caps.len().min(10) {
        groups.push(caps.get(i).map(|m| (m.start(), m.end())));
    }
    let named = re
        .named
        .iter()
        .filter_map(|&(idx, slot)| {
            let m = caps.get(idx)?;
            Some((slot, subject.get(m.start()..m.end())?.to_owned()))
        })
        .collect();
    Some((
        Captures {
            subject: subject.to_owned(),
            groups,
        },
        named,
    ))
}

/// The server_name lookup of one listen address, in nginx's precedence order.
#[derive(Debug, Default)]
struct NameIndex {
    exact: HashMap<String, usize>,
    /// `*.example.com` stored as `.example.com` → server.
    leading: HashMap<String, usize>,
    /// `www.example.*` stored as `www.example.` → server.
    trailing: HashMap<String, usize>,
    regexes: Vec<(Regex, usize)>,
    default_server: usize,
}

/// Per-Plan routing tables.
#[derive(Debug)]
pub struct Router {
    groups: Vec<(ListenAddr, NameIndex)>,
}

/// The chosen server and what its name match captured.
pub struct ServerMatch {
    pub server: usize,
    pub captures: Option<(Captures, Vec<(u32, String)>)>,
}

impl Router {
    pub fn new(plan: &Plan) -> Router {
        let mut groups = Vec::new();
        for lg in &plan.http.listens {
            let mut ix = NameIndex {
                default_server: lg.default_server,
                ..NameIndex::default()
            };
            for &si in &lg.servers {
                let Some(server) = plan.http.servers.get(si) else {
                    continue;
                };
                for name in &server.names {
                    // The first server that names a host keeps it (nginx warns "conflicting server name").
                    match name {
                        ServerName::Exact(n) => {
                            ix.exact.entry(n.to_ascii_lowercase()).or_insert(si);
                        }
                        ServerName::LeadingWildcard(n) => {
                            ix.leading.entry(n.to_ascii_lowercase()).or_insert(si);
                        }
                        ServerName::TrailingWildcard(n) => {
                            ix.trailing.entry(n.to_ascii_lowercase()).or_insert(si);
                        }
                        ServerName::Regex(re) => ix.regexes.push((re.clone(), si)),
                    }
                }
            }
            groups.push((lg.addr.clone(), ix));
        }
        Router { groups }
    }

    /// Index of the listen group bound to `addr` (as in `Plan::http.listens`).
    pub fn listen_index(&self, addr: &ListenAddr) -> Option<usize> {
        self.groups.iter().position(|(a, _)| a == addr)
    }

    /// nginx's order: exact name, longest leading wildcard, longest trailing wildcard, first regex in
    /// config order, then the default server. `host` is already lowercased and without port/dot.
    pub fn select_server(&self, listen: usize, host: Option<&str>) -> ServerMatch {
        let Some((_, ix)) = self.groups.get(listen) else {
            return ServerMatch {
                server: 0,
                captures: None,
            };
        };
        let default = ServerMatch {
            server: ix.default_server,
            captures: None,
        };
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return default;
        };
        if let Some(&s) = ix.exact.get(host) {
            return ServerMatch {
                server: s,
                captures: None,
            };
        }
        if !ix.leading.is_empty() {
            // Longest suffix first: the first dot from the left gives the longest one.
            for (i, b) in host.bytes().enumerate() {
                if b == b'.' {
                    if let Some(&s) = ix.leading.get(&host[i..]) {
                        return ServerMatch {
                            server: s,
                            captures: None,
                        };
                    }
                }
            }
        }
        if !ix.trailing.is_empty() {
            for (i, b) in host.bytes().enumerate().rev() {
                if b == b'.' {
                    if let Some(&s) = ix.trailing.get(&host[..=i]) {
                        return ServerMatch {
                            server: s,
                            captures: None,
                        };
                    }
                }
            }
        }
        for (re, s) in &ix.regexes {
            if let Some(c) = regex_match(re, host) {
                return ServerMatch {
                    server: *s,
                    captures: Some(c),
                };
            }
        }
        default
    }
}

/// Validate and normalise a Host value as nginx's `ngx_http_validate_host`: lowercase, no port, one
/// trailing dot removed. `Err` = 400 ("client sent invalid host header").
pub fn validate_host(raw: &[u8]) -> Result<String, BadHost> {
    let mut dot_pos = raw.len();
    let mut host_len = raw.len();
    // 0 = usual, 1 = inside an IPv6 literal, 2 = after the host (port).
    let mut state = 0;
    for (i, &ch) in raw.iter().enumerate() {
        match ch {
            b'.' => {
                if i > 0 && dot_pos == i - 1 {
                    return Err(BadHost);
                }
                dot_pos = i;
            }
            b':' if state == 0 => {
                host_len = i;
                state = 2;
            }
            b'[' if i == 0 => state = 1,
            b']' if state == 1 => {
                host_len = i + 1;
                state = 2;
            }
            b'/' => return Err(BadHost),
            c if c <= 0x20 || c == 0x7f => return Err(BadHost),
            _ => {}
        }
    }
    if host_len > 0 && dot_pos == host_len - 1 {
        host_len -= 1;
    }
    if host_len == 0 {
        return Err(BadHost);
    }
    let host = std::str::from_utf8(&raw[..host_len]).map_err(|_| BadHost)?;
    Ok(host.to_ascii_lowercase())
}

/// A Host nginx rejects with 400 ("client sent invalid host header").
#[derive(Debug, PartialEq, Eq)]
pub struct BadHost;

/// A URI that nginx rejects with 400 (invalid encoding or climbing above `/`).
#[derive(Debug, PartialEq, Eq)]
pub struct BadUri;

/// nginx's `ngx_http_parse_complex_uri` for the path part: percent-decoding, `.` and `..` segments,
/// `merge_slashes`. `%00` and a `..` above the root are errors. A raw `#` ends the path.
pub fn normalize_path(raw: &[u8], merge_slashes: bool) -> Result<Vec<u8>, BadUri> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let mut ch = raw[i];
        i += 1;
        if ch == b'#' {
            break;
        }
        if ch == b'%' {
            let hi = raw.get(i).and_then(|c| (*c as char).to_digit(16));
            let lo = raw.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    ch = (h * 16 + l) as u8;
                    i += 2;
                    if ch == 0 {
                        return Err(BadUri);
                    }
                }
                _ => return Err(BadUri),
            }
        }
        if ch == b'/' && merge_slashes && out.last() == Some(&b'/') {
            continue;
        }
        out.push(ch);
        // Resolve dot segments when a segment ends (at '/'), and at the end of input below.
        if ch == b'/' {
            resolve_dots(&mut out)?;
        }
    }
    // A trailing "/." or "/.." acts as if followed by a slash.
    if out.ends_with(b"/.") || out.ends_with(b"/..") {
        out.push(b'/');
        resolve_dots(&mut out)?;
    }
    if out.is_empty() || out[0] != b'/' {
        return Err(BadUri);
    }
    Ok(out)
}

/// `out` ends with '/': collapse a just-finished "/./" or "/../" segment.
fn resolve_dots(out: &mut Vec<u8>) -> Result<(), BadUri> {
    if out.ends_with(b"/./") {
        out.truncate(out.len() - 2);
    } else if out.ends_with(b"/../") {
        let base = out.len() - 4;
        if base == 0 {
            return Err(BadUri);
        }
        // Drop the previous segment: back to the slash before it.
        let prev = out[..base].iter().rposition(|&c| c == b'/').ok_or(BadUri)?;
        out.truncate(prev + 1);
    }
    Ok(())
}

/// The location a URI selects, with what its regex captured.
pub struct LocationMatch {
    pub location: Arc<Location>,
    pub captures: Option<(Captures, Vec<(u32, String)>)>,
    /// nginx's `auto_redirect`: the URI is this location's path without its trailing slash and the
    /// location proxies: answer 301 to the path with the slash.
    pub redirect_slash: bool,
}

enum Found {
    /// `=` location or a regex: final.
    Final(LocationMatch),
    /// A prefix location (longest); regexes may still override unless `^~`.
    Prefix(LocationMatch, bool),
    None,
}

/// nginx's `ngx_http_core_find_location`: exact, longest prefix (nested first), `^~` stops,
/// otherwise regexes in config order, each level's nested locations searched from its match.
pub fn find_location(server: &Server, uri: &str) -> Option<LocationMatch> {
    match find_in(&server.locations, uri) {
        Found::Final(m) | Found::Prefix(m, _) => Some(m),
        Found::None => None,
    }
}

fn find_in(locs: &[Arc<Location>], uri: &str) -> Found {
    // Static lookup: exact match wins outright; otherwise the longest prefix.
    let mut best: Option<(&Arc<Location>, usize, bool)> = None;
    for loc in locs {
        match &loc.matcher {
            LocMatch::Exact(p) if p == uri => {
                return Found::Final(LocationMatch {
                    location: loc.clone(),
                    captures: None,
                    redirect_slash: false,
                })
            }
            LocMatch::Prefix { path, no_regex }
                if uri.as_bytes().starts_with(path.as_bytes())
                    && best.map_or(true, |(_, len, _)| path.len() > len) =>
            {
                best = Some((loc, path.len(), *no_regex));
            }
            _ => {}
        }
    }
    // nginx's static tree answers NGX_DONE (301, no regexes) when the URI plus "/" names a
    // location whose path ends in "/" and that proxies (`auto_redirect`), unless "=" matched above.
    for loc in locs {
        let path = match &loc.matcher {
            LocMatch::Exact(p) | LocMatch::Prefix { path: p, .. } => p,
            _ => continue,
        };
        if path.len() == uri.len() + 1
            && path.ends_with('/')
            && path.starts_with(uri)
            && loc.conf.proxy.is_some()
        {
            return Found::Final(LocationMatch {
                location: loc.clone(),
                captures: None,
                redirect_slash: true,
            });
        }
    }
    let mut result = Found::None;
    let mut noregex = false;
    if let Some((loc, _, nr)) = best {
        noregex = nr;
        result = Found::Prefix(
            LocationMatch {
                location: loc.clone(),
                captures: None,
                redirect_slash: false,
            },
            nr,
        );
        if !loc.children.is_empty() {
            match find_in(&loc.children, uri) {
                Found::Final(m) => return Found::Final(m),
                Found::Prefix(m, nr2) => result = Found::Prefix(m, nr2),
                Found::None => {}
            }
        }
    }
    if !noregex {
        for loc in locs {
            if let LocMatch::Regex(re) = &loc.matcher {
                if let Some(c) = regex_match(re, uri) {
                    let mut m = LocationMatch {
                        location: loc.clone(),
                        captures: Some(c),
                        redirect_slash: false,
                    };
                    if !loc.children.is_empty() {
                        match find_in(&loc.children, uri) {
                            Found::Final(n) | Found::Prefix(n, _) => m = n,
                            Found::None => {}
                        }
                    }
                    return Found::Final(m);
                }
            }
        }
    }
    result
}

/// The named location `@name` of a server (internal redirects only).
pub fn named_location(server: &Server, name: &str) -> Option<Arc<Location>> {
    server
        .named
        .iter()
        .find(|l| matches!(&l.matcher, LocMatch::Named(n) if n == name))
        .cloned()
}

/// The path of a `=` or prefix location ("" for regex and named ones).
pub fn matched_path(loc: &Location) -> &str {
    match &loc.matcher {
        LocMatch::Exact(p) | LocMatch::Prefix { path: p, .. } => p,
        LocMatch::Regex(_) | LocMatch::Named(_) => "",
    }
}

/// The length of the prefix a location matched, for `proxy_pass` with a URI part.
pub fn matched_prefix_len(loc: &Location) -> usize {
    match &loc.matcher {
        LocMatch::Exact(p) | LocMatch::Prefix { path: p, .. } => p.len(),
        LocMatch::Regex(_) | LocMatch::Named(_) => 0,
    }
}

#[allow(dead_code)]
fn _assert_types(_: &plan::Http) {}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, BadUri> {
        normalize_path(s.as_bytes(), true).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn normalises_like_nginx() {
        assert_eq!(n("/a/./b"), Ok("/a/b".into()));
        assert_eq!(n("/a/../b"), Ok("/b".into()));
        assert_eq!(n("/a/b/.."), Ok("/a/".into()));
        assert_eq!(n("/a/b/."), Ok("/a/b/".into()));
        assert_eq!(n("//a///b"), Ok("/a/b".into()));
        assert_eq!(n("/%61/%2e%2e/x"), Ok("/x".into()));
        assert_eq!(n("/a../x"), Ok("/a../x".into()));
        assert_eq!(n("/a%2fb"), Ok("/a/b".into()));
        assert_eq!(n("/.."), Err(BadUri));
        assert_eq!(n("/a/../../b"), Err(BadUri));
        assert_eq!(n("/%2e%2e/"), Err(BadUri));
        assert_eq!(n("/a%zz"), Err(BadUri));
        assert_eq!(n("/a%00"), Err(BadUri));
        assert_eq!(n("/a#frag"), Ok("/a".into()));
        assert_eq!(
            normalize_path(b"//a//b", false).map(|v| String::from_utf8(v).unwrap()),
            Ok("//a//b".into())
        );
    }

    #[test]
    fn validates_host_like_nginx() {
        assert_eq!(validate_host(b"Example.COM:8080"), Ok("example.com".into()));
        assert_eq!(validate_host(b"example.com."), Ok("example.com".into()));
        assert_eq!(validate_host(b"[::1]:80"), Ok("[::1]".into()));
        assert!(validate_host(b"a/b").is_err());
        assert!(validate_host(b"a..b").is_err());
        assert!(validate_host(b"").is_err());
        assert!(validate_host(b":80").is_err());
    }
}
