//! `map $src $dst { ... }` evaluation, nginx's `ngx_http_map_find`: lazy (only when `$dst` is read),
//! cached per request, exact keys (case-insensitive) first, then with `hostnames` the wildcard keys
//! (longest `*.x`/`.x` suffix, then `x.*` prefix), then `~`/`~*` regexes in config order (their
//! captures are usable in the value), then `default` (empty when absent).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::ctx::RequestCtx;
use super::router::{regex_match, Captures};
use crate::plan::{Map, Plan, Segment, Template, Var};

/// How deep maps may read other maps before a read gives "" (a map that reads itself would never
/// end; nginx refuses such cycles at run time too, with an empty value).
const MAX_DEPTH: u32 = 16;

/// Per-request state of the edge phases that templates read: map results and the real-IP facts.
#[derive(Debug, Default)]
pub struct EdgeCtx {
    /// The Plan whose maps `Var::Map` refers to; set when the request enters the edge phases.
    pub plan: Option<Arc<Plan>>,
    /// One cell per map: its value once evaluated.
    pub maps: Vec<OnceLock<Vec<u8>>>,
    depth: AtomicU32,
    /// Named captures of map regexes: nginx makes them request variables once the map is read.
    captured: Mutex<Vec<(u32, String)>>,
    /// `$realip_remote_addr`: the peer address before `real_ip_header` replaced `$remote_addr`.
    pub realip_remote: Option<std::net::SocketAddr>,
    /// The request went through an internal redirect (rewrite, error_page): `internal` locations
    /// may serve it.
    pub internal: bool,
}

impl EdgeCtx {
    /// Make `plan`'s maps readable (empty cache).
    pub fn attach(&mut self, plan: &Arc<Plan>) {
        self.maps = (0..plan.http.maps.len()).map(|_| OnceLock::new()).collect();
        self.plan = Some(plan.clone());
    }

    /// The value a map regex captured into slot `slot`, if any.
    pub fn captured(&self, slot: u32) -> Option<String> {
        let c = self.captured.lock().ok()?;
        c.iter()
            .rev()
            .find(|(s, _)| *s == slot)
            .map(|(_, v)| v.clone())
    }

    /// Forget cached map values (after the source variables may have changed, e.g. a new URI).
    pub fn clear_maps(&mut self) {
        for m in &mut self.maps {
            m.take();
        }
    }
}

/// Append the value of map `index` to `out`, evaluating it on first use.
pub fn map_into(ctx: &RequestCtx, index: u32, out: &mut Vec<u8>) {
    let i = index as usize;
    let Some(cell) = ctx.edge.maps.get(i) else {
        return;
    };
    if let Some(v) = cell.get() {
        out.extend_from_slice(v);
        return;
    }
    let Some(map) = ctx.edge.plan.as_ref().and_then(|p| p.http.maps.get(i)) else {
        return;
    };
    if ctx.edge.depth.fetch_add(1, Ordering::Relaxed) >= MAX_DEPTH {
        ctx.edge.depth.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let v = evaluate(ctx, map);
    ctx.edge.depth.fetch_sub(1, Ordering::Relaxed);
    out.extend_from_slice(&v);
    let _ = cell.set(v);
}

/// The map's value for this request.
pub fn evaluate(ctx: &RequestCtx, map: &Map) -> Vec<u8> {
    let src = ctx.render(&map.source);
    let mut key = String::from_utf8_lossy(&src).into_owned();
    if map.hostnames && key.ends_with('.') {
        key.pop();
    }
    if let Some((_, v)) = map
        .exact
        .iter()
        .find(|(k, _)| !is_wildcard(map, k) && k.eq_ignore_ascii_case(&key))
    {
        return ctx.render(v);
    }
    if map.hostnames {
        if let Some(v) = hostname_match(map, &key) {
            return ctx.render(v);
        }
    }
    for (re, v) in &map.regexes {
        if let Some((caps, named)) = regex_match(re, &key) {
            let out = render_with(ctx, v, &caps, &named);
            if let Ok(mut c) = ctx.edge.captured.lock() {
                c.extend(named);
            }
            return out;
        }
    }
    map.default
        .as_ref()
        .map(|d| ctx.render(d))
        .unwrap_or_default()
}

fn is_wildcard(map: &Map, k: &str) -> bool {
    map.hostnames && (k.starts_with("*.") || k.starts_with('.') || k.ends_with(".*"))
}

/// nginx's wildcard hash order: the longest leading wildcard (`*.a.b` matches `x.a.b`; `.a.b` also
/// `a.b`), then the longest trailing one (`www.a.*`).
fn hostname_match<'m>(map: &'m Map, host: &str) -> Option<&'m Template> {
    let mut best: Option<(usize, &Template)> = None;
    for (k, v) in &map.exact {
        let len = if let Some(suffix) = k.strip_prefix('*') {
            // `*.a.b`: at least one label before `.a.b`.
            (host.len() > suffix.len() && ends_with_ci(host, suffix)).then_some(suffix.len())
        } else if let Some(bare) = k.strip_prefix('.') {
            (host.eq_ignore_ascii_case(bare) || ends_with_ci(host, k)).then_some(k.len())
        } else {
            None
        };
        if let Some(len) = len {
            if best.map_or(true, |(l, _)| len > l) {
                best = Some((len, v));
            }
        }
    }
    if let Some((_, v)) = best {
        return Some(v);
    }
    for (k, v) in &map.exact {
        if let Some(prefix) = k.strip_suffix('*') {
            if host.len() > prefix.len()
                && host.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                && best.map_or(true, |(l, _)| prefix.len() > l)
            {
                best = Some((prefix.len(), v));
            }
        }
    }
    best.map(|(_, v)| v)
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Render a map value where `$1..$9` and named captures come from the map's own regex match.
fn render_with(
    ctx: &RequestCtx,
    t: &Template,
    caps: &Captures,
    named: &[(u32, String)],
) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in &t.segments {
        match seg {
            Segment::Literal(s) => out.extend_from_slice(s.as_bytes()),
            Segment::Var(Var::Capture(n)) => {
                if let Some(s) = caps.get(*n as usize) {
                    out.extend_from_slice(s.as_bytes())
                }
            }
            Segment::Var(Var::Slot(s)) if named.iter().any(|(n, _)| n == s) => {
                if let Some((_, v)) = named.iter().find(|(n, _)| n == s) {
                    out.extend_from_slice(v.as_bytes())
                }
            }
            Segment::Var(_) => ctx.render_into(
                &Template {
                    segments: vec![seg.clone()],
                },
                &mut out,
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use crate::plan::{Template, Var};
    use crate::runtime::edge::testing;

    const MAPS: &str = r#"
        map $uri $kind {
            default                 other;
            /Exact                  exact;
            ~^/api/(?<ver>v\d+)/    api-$ver;
            ~*^/IMG/(.+)$           img-$1;
            /host                   $host;
        }
        map $http_host $site {
            hostnames;
            default          none;
            example.com      apex;
            *.example.com    sub;
            .example.org     org;
            www.example.*    www;
        }
        server { listen 127.0.0.1:8080; return 200 "$kind $site $ver"; }
    "#;

    fn eval(uri: &str, host: &str) -> String {
        let plan = testing::plan(MAPS);
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(host).expect("test host"));
        let c = testing::ctx(&plan, uri, "", h);
        let t = Template {
            segments: vec![
                crate::plan::Segment::Var(Var::Map(0)),
                crate::plan::Segment::Literal(" ".into()),
                crate::plan::Segment::Var(Var::Map(1)),
            ],
        };
        String::from_utf8(c.render(&t)).unwrap_or_default()
    }

    #[test]
    fn exact_regex_default_and_values_with_variables() {
        assert_eq!(eval("/exact", "x"), "exact none");
        assert_eq!(eval("/api/v2/x", "x"), "api-v2 none");
        assert_eq!(eval("/img/a.png", "x"), "img-a.png none");
        assert_eq!(eval("/host", "x"), "example.com none");
        assert_eq!(eval("/zzz", "x"), "other none");
    }

    #[test]
    fn hostnames() {
        assert_eq!(eval("/", "example.com"), "other apex");
        assert_eq!(eval("/", "Example.COM."), "other apex");
        assert_eq!(eval("/", "a.b.example.com"), "other sub");
        assert_eq!(eval("/", "example.org"), "other org");
        assert_eq!(eval("/", "x.example.org"), "other org");
        assert_eq!(eval("/", "www.example.net"), "other www");
        assert_eq!(eval("/", "example.net"), "other none");
    }

    #[test]
    fn lazy_and_cached() {
        let plan = testing::plan(MAPS);
        let mut c = testing::ctx(&plan, "/api/v1/", "", HeaderMap::new());
        assert!(c.edge.maps.iter().all(|m| m.get().is_none()));
        let t = Template {
            segments: vec![crate::plan::Segment::Var(Var::Map(0))],
        };
        assert_eq!(c.render(&t), b"api-v1");
        assert!(c.edge.maps[0].get().is_some() && c.edge.maps[1].get().is_none());
        // Cached: a new URI does not change the value until the cache is cleared.
        c.uri = "/exact".into();
        assert_eq!(c.render(&t), b"api-v1");
        c.edge.clear_maps();
        assert_eq!(c.render(&t), b"exact");
    }
}
