//! `proxy_redirect`: rewrite the `Location` and `Refresh` (after `url=`) headers of a proxied
//! response, nginx's `ngx_http_proxy_rewrite_redirect`. Rules are tried in order, the first that
//! matches replaces; a text rule replaces its (case-sensitive) prefix, a regex rule the whole value.
//! The implicit `default` is `proxy_redirect <proxy_pass URL> <location>` for a `proxy_pass` without
//! variables, where a URL without a URI part gets the location's name appended.

use http::header::{self, HeaderValue};
use http::HeaderMap;

use super::ctx::RequestCtx;
use super::router::{self, regex_match};
use crate::plan::{LocMatch, Location, ProxyConf, ProxyPass, ProxyRedirect, RedirectFrom, Scheme};

/// Rewrite `headers` (a proxied response's) per `conf.redirect`. Returns whether `Location` was
/// rewritten: only then does nginx's header filter make it absolute (a relative `Location` the
/// upstream sent and no rule touched goes out as sent).
pub fn rewrite(
    ctx: &mut RequestCtx,
    conf: &ProxyConf,
    loc: Option<&Location>,
    headers: &mut HeaderMap,
) -> bool {
    let mut location_rewritten = false;
    if matches!(conf.redirect, ProxyRedirect::Off) {
        return false;
    }
    for (name, refresh) in [(header::LOCATION, false), (header::REFRESH, true)] {
        let Some(v) = headers.get(&name) else {
            continue;
        };
        let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
        let start = if refresh {
            match find_ci(&value, "url=") {
                Some(i) => i + 4,
                None => continue,
            }
        } else {
            0
        };
        if let Some(new) = apply(ctx, conf, loc, &value, start) {
            if let Ok(v) = HeaderValue::from_str(&new) {
                location_rewritten |= !refresh;
                headers.insert(name, v);
            }
        }
    }
    location_rewritten
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The rewritten value, or `None` when no rule applies.
fn apply(
    ctx: &mut RequestCtx,
    conf: &ProxyConf,
    loc: Option<&Location>,
    value: &str,
    start: usize,
) -> Option<String> {
    let rest = value.get(start..)?;
    match &conf.redirect {
        ProxyRedirect::Off => None,
        ProxyRedirect::Default => {
            let (from, to) = default_rule(conf, loc?)?;
            let tail = rest.strip_prefix(from.as_str())?;
            Some(format!("{}{to}{tail}", &value[..start]))
        }
        ProxyRedirect::Rules(rules) => {
            for (from, to) in rules {
                match from {
                    RedirectFrom::Prefix(t) => {
                        let pattern = String::from_utf8_lossy(&ctx.render(t)).into_owned();
                        if let Some(tail) = rest.strip_prefix(pattern.as_str()) {
                            let to = String::from_utf8_lossy(&ctx.render(to)).into_owned();
                            return Some(format!("{}{to}{tail}", &value[..start]));
                        }
                    }
                    RedirectFrom::Regex(re) => {
                        if let Some(caps) = regex_match(re, rest) {
                            ctx.set_captures(Some(caps));
                            let to = String::from_utf8_lossy(&ctx.render(to)).into_owned();
                            return Some(format!("{}{to}", &value[..start]));
                        }
                    }
                }
            }
            None
        }
    }
}

/// (FROM, TO) of the implicit `proxy_redirect default`; none for `proxy_pass` with variables and
/// for regex or named locations.
fn default_rule(conf: &ProxyConf, loc: &Location) -> Option<(String, String)> {
    let ProxyPass::Static {
        scheme,
        uri,
        proxy_host,
        ..
    } = &conf.pass
    else {
        return None;
    };
    if !matches!(loc.matcher, LocMatch::Exact(_) | LocMatch::Prefix { .. }) {
        return None;
    }
    let name = router::matched_path(loc);
    let scheme = match scheme {
        Scheme::Http => "http://",
        Scheme::Https => "https://",
    };
    Some(match uri {
        Some(u) => (format!("{scheme}{proxy_host}{u}"), name.to_string()),
        None => (format!("{scheme}{proxy_host}/"), "/".to_string()),
    })
}
