//! nginx-rs's own responses: nginx's HTML error pages (same layout, footer `nginx-rs`) with nginx's
//! status-line reason phrases, and nginx's error-log lines.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{self, Body};
use super::ctx::{RequestCtx, SERVER_TOKEN_FULL, SERVER_TOKEN_SHORT};
use crate::plan::ServerTokens;

/// nginx's reason phrase and page title for a status (`ngx_http_status_lines`), where it differs from
/// or is missing in hyper's table.
pub fn reason(code: u16) -> Option<&'static str> {
    Some(match code {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => return None,
    })
}

/// The body nginx sends for `code` (`ngx_http_error_pages` + tail), or `None` when nginx sends none.
pub fn page(code: u16, tokens: ServerTokens) -> Option<String> {
    let footer = match tokens {
        ServerTokens::Off => SERVER_TOKEN_SHORT,
        _ => SERVER_TOKEN_FULL,
    };
    let head = |title: &str, h1: &str, extra: &str| {
        format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{h1}</h1></center>\r\n{extra}<hr><center>{footer}</center>\r\n</body>\r\n</html>\r\n"
        )
    };
    match code {
        // nginx's special 4xx codes that reply 400 with an explanation line.
        494 => Some(head(
            "400 Request Header Or Cookie Too Large",
            "400 Bad Request",
            "<center>Request Header Or Cookie Too Large</center>\r\n",
        )),
        // nginx's 302 page says "Found" while its status line says "Moved Temporarily".
        302 => Some(head("302 Found", "302 Found", "")),
        _ if code >= 300 && code != 304 => {
            let title = format!("{code} {}", reason(code)?);
            Some(head(&title, &title, ""))
        }
        _ => None,
    }
}

/// Marks a response nginx-rs made itself (not an upstream's), so `error_page` applies to it.
#[derive(Clone, Copy, Debug)]
pub struct Generated;

/// A complete error response as nginx sends it. `close` adds `Connection: close` (hyper then closes
/// the connection after writing it), as nginx does after a client error it cannot recover from.
pub fn response(code: u16, tokens: ServerTokens, close: bool, head_only: bool) -> Response<Body> {
    let status_code = if code == 494 { 400 } else { code };
    let text = page(code, tokens).unwrap_or_default();
    let len = text.len();
    let mut resp = Response::new(if head_only {
        body::empty()
    } else {
        body::full(text)
    });
    *resp.status_mut() = StatusCode::from_u16(status_code).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(header::SERVER, server_header(tokens));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    set_reason(&mut resp, status_code);
    resp.extensions_mut().insert(Generated);
    resp
}

/// Use nginx's reason phrase on the status line (e.g. `504 Gateway Time-out`).
pub fn set_reason<B>(resp: &mut Response<B>, code: u16) {
    if let Some(r) = reason(code) {
        let canonical = StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason());
        if canonical != Some(r) {
            resp.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(r.as_bytes()));
        }
    }
}

pub fn server_header(tokens: ServerTokens) -> HeaderValue {
    HeaderValue::from_static(match tokens {
        ServerTokens::Off => SERVER_TOKEN_SHORT,
        _ => SERVER_TOKEN_FULL,
    })
}

/// Log `msg` at error level with nginx's request context suffix:
/// `MSG, client: 1.2.3.4, server: _, request: "GET / HTTP/1.1", upstream: "http://...", host: "..."`.
pub fn log_error(ctx: &RequestCtx, msg: &str, upstream: Option<&str>) {
    log_at(ctx, crate::conf::Level::Error, msg, upstream);
}

/// [`log_error`] at `level`.
pub fn log_at(ctx: &RequestCtx, level: crate::conf::Level, msg: &str, upstream: Option<&str>) {
    let mut line = format!(
        "{msg}, client: {}, server: {}, request: \"{}\"",
        ctx.conn.remote.ip(),
        ctx.server_name(),
        ctx.request_line()
    );
    if let Some(u) = upstream {
        line.push_str(&format!(", upstream: \"{u}\""));
    }
    if let Some(h) = ctx.headers.get(header::HOST) {
        line.push_str(&format!(
            ", host: \"{}\"",
            String::from_utf8_lossy(h.as_bytes())
        ));
    }
    // The error_log of the location (or server, or http) handling the request, else the main one.
    let conf = ctx.loc_conf.as_ref().unwrap_or(&ctx.server.conf);
    if !crate::runtime::log::errorlog::log_level(&conf.error_logs, level, Some(ctx.conn.id), &line)
    {
        if level <= crate::conf::Level::Error {
            tracing::error!(target: "nginx_rs::error_log", conn = ctx.conn.id, "{line}");
        } else {
            tracing::info!(target: "nginx_rs::error_log", conn = ctx.conn.id, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_layout_matches_nginx() {
        assert_eq!(
            page(502, ServerTokens::Off).as_deref(),
            Some("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx-rs</center>\r\n</body>\r\n</html>\r\n")
        );
        assert!(page(200, ServerTokens::On).is_none());
    }
}
