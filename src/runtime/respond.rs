//! Responses the edge phases make themselves: `return` (text, or a redirect / error page),
//! nginx's absolute `Location` (`absolute_redirect`, `port_in_redirect`, `server_name_in_redirect`,
//! as its header filter does for every `Location` that starts with `/`), and `add_header`.

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::{self, Body};
use super::ctx::RequestCtx;
use super::errors;
use crate::plan::LocConf;

/// What a phase answered, before `error_page` and the header filter.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// nginx's special response: the status's HTML page (or none), `Location` for redirects;
    /// `error_page` applies. `close`: `Connection: close` after it (client errors).
    Page {
        code: u16,
        location: Option<String>,
        close: bool,
    },
    /// `return CODE TEXT` (or a code below 400 without text): the text as the body.
    Text { code: u16, body: Vec<u8> },
}

impl Reply {
    pub fn page(code: u16) -> Reply {
        Reply::Page {
            code,
            location: None,
            close: false,
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Reply::Page { code, .. } | Reply::Text { code, .. } => *code,
        }
    }
}

/// nginx's `return` (`ngx_http_send_response`): redirect codes take the text as `Location`; other
/// codes below 400, or any code with text, send the text; the rest is the error page.
pub fn from_return(code: u16, text: Option<Vec<u8>>) -> Reply {
    match (code, text) {
        (301 | 302 | 303 | 307 | 308, text) => Reply::Page {
            code,
            location: text.map(|t| String::from_utf8_lossy(&t).into_owned()),
            close: false,
        },
        (_, Some(body)) => Reply::Text { code, body },
        (c, None) if c < 400 => Reply::Text {
            code,
            body: Vec::new(),
        },
        (c, None) => Reply::page(c),
    }
}

/// Build the response for `reply` with `conf`'s `server_tokens` and `default_type`.
pub fn build(ctx: &RequestCtx, conf: &LocConf, reply: Reply) -> Response<Body> {
    let head_only = ctx.method == Method::HEAD;
    match reply {
        Reply::Page {
            code,
            location,
            close,
        } => {
            let mut resp = errors::response(code, conf.server_tokens, close, head_only);
            if code == 444 {
                // nginx's `return 444`: close the connection without an answer.
                resp.extensions_mut().insert(super::request::CloseSilently);
            }
            if let Some(l) = location {
                set_location(&mut resp, &l);
            }
            resp
        }
        Reply::Text { code, body: text } => {
            let len = text.len();
            let mut resp = Response::new(if head_only {
                body::empty()
            } else {
                body::full(text)
            });
            *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            errors::set_reason(&mut resp, code);
            let h = resp.headers_mut();
            h.insert(header::SERVER, errors::server_header(conf.server_tokens));
            if let Ok(v) = HeaderValue::from_str(content_type(&ctx.uri, &conf.default_type)) {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            resp
        }
    }
}

fn set_location<B>(resp: &mut Response<B>, l: &str) {
    if let Ok(v) = HeaderValue::from_str(l) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
}

/// nginx's built-in `types` (no `mime.types` included): html, gif and jpg; else `default_type`.
fn content_type<'a>(uri: &str, default_type: &'a str) -> &'a str {
    let ext = uri
        .rsplit('/')
        .next()
        .and_then(|last| last.rsplit_once('.'))
        .map(|(_, e)| e);
    match ext {
        Some(e) if e.eq_ignore_ascii_case("html") => "text/html",
        Some(e) if e.eq_ignore_ascii_case("gif") => "image/gif",
        Some(e) if e.eq_ignore_ascii_case("jpg") => "image/jpeg",
        _ => default_type,
    }
}

/// The header filter's `Location` rule: a value starting with `/` becomes
/// `http://HOST[:PORT]/...` when `absolute_redirect` is on. HOST is the server's first name with
/// `server_name_in_redirect`, else the request's host, else the local address; the port is left out
/// when it is 80 or `port_in_redirect` is off.
pub fn absolutize(ctx: &RequestCtx, conf: &LocConf, location: &str) -> Option<String> {
    if !location.starts_with('/') || !conf.absolute_redirect {
        return None;
    }
    let mut out = String::with_capacity(location.len() + 32);
    out.push_str("http://");
    if conf.server_name_in_redirect {
        out.push_str(ctx.server_name());
    } else if ctx.headers.contains_key(header::HOST) || ctx.absolute_target.is_some() {
        out.push_str(&ctx.host);
    } else {
        match ctx.conn.local.ip() {
            std::net::IpAddr::V6(v6) => out.push_str(&format!("[{v6}]")),
            v4 => out.push_str(&v4.to_string()),
        }
    }
    let port = ctx.conn.local.port();
    if conf.port_in_redirect && port != 80 {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(location);
    Some(out)
}

/// Apply [`absolutize`] to the response's `Location`, if any.
pub fn absolutize_location<B>(ctx: &RequestCtx, conf: &LocConf, resp: &mut Response<B>) {
    let Some(l) = resp.headers().get(header::LOCATION) else {
        return;
    };
    let Ok(l) = std::str::from_utf8(l.as_bytes()) else {
        return;
    };
    if let Some(abs) = absolutize(ctx, conf, l) {
        set_location(resp, &abs);
    }
}

/// `add_header`: only for 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 unless `always`;
/// an empty value adds nothing.
pub fn add_headers<B>(ctx: &RequestCtx, conf: &LocConf, resp: &mut Response<B>) {
    if conf.add_headers.is_empty() {
        return;
    }
    let ok = matches!(
        resp.status().as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    );
    for h in &conf.add_headers {
        if !(ok || h.always) {
            continue;
        }
        let v = ctx.render(&h.value);
        if v.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&v) {
            resp.headers_mut().append(h.name.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_forms() {
        assert_eq!(
            from_return(301, Some(b"/x".to_vec())),
            Reply::Page {
                code: 301,
                location: Some("/x".into()),
                close: false
            }
        );
        assert_eq!(from_return(404, None), Reply::page(404));
        assert_eq!(
            from_return(404, Some(b"gone".to_vec())),
            Reply::Text {
                code: 404,
                body: b"gone".to_vec()
            }
        );
        assert_eq!(
            from_return(204, None),
            Reply::Text {
                code: 204,
                body: vec![]
            }
        );
    }

    #[test]
    fn builtin_types() {
        assert_eq!(content_type("/a/b.HTML", "text/plain"), "text/html");
        assert_eq!(content_type("/a.b/c", "text/plain"), "text/plain");
        assert_eq!(content_type("/x.jpg", "text/plain"), "image/jpeg");
    }
}
