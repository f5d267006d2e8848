//! Response heads on nginx-rs's own HTTP/1 connections: the status line, the headers with
//! their names in title case (as nginx writes its own: `Content-Type`, `Server`), the framing
//! headers the body needs, and `Date`. The framing rules are those hyper's server applied
//! before (RFC 9112): no body for `HEAD`, 1xx, 204 and 304; a known length as
//! `Content-Length`; otherwise chunked, or close-delimited for an HTTP/1.0 client.

use http::header::{self, HeaderValue};
use http::StatusCode;

use crate::runtime::guard::RawNames;

/// A response extension: the header names as the upstream spelled them. nginx passes an
/// upstream's names on as sent, except those it writes itself (`Content-Type`, `Content-Length`,
/// and `Server`, `Date`, `Connection`, which it never passes).
#[derive(Clone, Debug)]
pub struct SpelledNames(pub RawNames);

/// How the response body goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyOut {
    /// None at all (whatever the body holds is dropped).
    None,
    Length(u64),
    Chunked,
    /// Up to the connection's close (HTTP/1.0 clients, no known length).
    Close,
}

/// The request facts the response head depends on.
pub struct For {
    /// A `HEAD` request: the head says what a GET would get, no body follows.
    pub head: bool,
    pub http10: bool,
}

/// What the body reports about itself before the first frame.
pub struct BodyHint {
    /// Nothing will come (`is_end_stream`).
    pub empty: bool,
    pub exact: Option<u64>,
}

/// Writes the head of a response with `status` and `headers` to `dst`. Returns how the body goes
/// out and whether the response closes the connection (`Connection: close`); `Err` for a
/// `Content-Length` the body cannot honour (nothing usable was written then).
pub fn head(
    dst: &mut Vec<u8>,
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &http::HeaderMap,
    spelled: Option<&RawNames>,
    body: BodyHint,
    req: For,
) -> Result<(BodyOut, bool), ()> {
    status_line(dst, status, reason);
    let head_req = req.head;
    let no_body = head_req || !may_have_content(status);
    // An HTTP/1.0 client gets a body of unknown length up to the close: the connection cannot
    // stay open, whatever the request path said (nginx turns keepalive off then too).
    let close_delimited = req.http10
        && !no_body
        && !body.empty
        && body.exact.is_none()
        && !headers.contains_key(header::CONTENT_LENGTH);
    let mut out = None;
    let mut close = close_delimited;
    let mut wrote_date = false;
    for (name, value) in headers.iter() {
        match *name {
            header::CONTENT_LENGTH => {
                if out.is_some() {
                    // Repeated: the first one counts.
                    continue;
                }
                if body.empty && !head_req {
                    // Nothing to send: an implicit `Content-Length: 0` follows if allowed.
                    continue;
                }
                let len = match body.exact {
                    Some(n) if !body.empty => n,
                    _ => parse_length(value.as_bytes()).ok_or(())?,
                };
                out = Some(BodyOut::Length(len));
            }
            // The framing is decided here; an upstream's is never passed on.
            header::TRANSFER_ENCODING => continue,
            header::CONNECTION if close_delimited => {
                dst.extend_from_slice(b"Connection: close\r\n");
                continue;
            }
            header::CONNECTION => close |= has_token(value, b"close"),
            header::DATE => wrote_date = true,
            _ => {}
        }
        let as_sent = match spelled {
            Some(names) if *name != header::CONTENT_TYPE && *name != header::CONTENT_LENGTH => {
                names
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(name.as_str().as_bytes()))
            }
            _ => None,
        };
        match as_sent.or_else(|| title_cased(name)) {
            Some(n) => dst.extend_from_slice(n),
            None => title_case(dst, name.as_str().as_bytes()),
        }
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    let out = match out {
        Some(o) => o,
        None if body.empty || body.exact == Some(0) => {
            if may_have_content(status) && !head_req {
                dst.extend_from_slice(b"Content-Length: 0\r\n");
            }
            BodyOut::Length(0)
        }
        None => match body.exact {
            Some(n) => {
                if may_have_content(status) {
                    dst.extend_from_slice(b"Content-Length: ");
                    dst.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    dst.extend_from_slice(b"\r\n");
                    BodyOut::Length(n)
                } else {
                    BodyOut::Length(0)
                }
            }
            None if req.http10 || no_body => BodyOut::Close,
            None => {
                dst.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                BodyOut::Chunked
            }
        },
    };
    if !wrote_date {
        dst.extend_from_slice(b"Date: ");
        super::date::extend(dst);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    if no_body {
        return Ok((BodyOut::None, close));
    }
    Ok((out, close || out == BodyOut::Close))
}

/// `HTTP/1.1 <code> <reason>`: nginx answers every HTTP/1.x client in HTTP/1.1.
fn status_line(dst: &mut Vec<u8>, status: StatusCode, reason: Option<&[u8]>) {
    if status == StatusCode::OK && reason.is_none() {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.extend_from_slice(b" ");
    match reason {
        Some(r) => dst.extend_from_slice(r),
        None => dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    dst.extend_from_slice(b"\r\n");
}

/// 1xx, 204 and 304 responses have no content and no `Content-Length` of their own.
fn may_have_content(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn has_token(v: &HeaderValue, token: &[u8]) -> bool {
    v.as_bytes()
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// `content-type` -> `Content-Type`.
/// [`title_case`] of the names most responses carry, written out: copied, not converted byte by
/// byte.
fn title_cased(name: &http::HeaderName) -> Option<&'static [u8]> {
    Some(match *name {
        header::SERVER => b"Server",
        header::DATE => b"Date",
        header::CONTENT_TYPE => b"Content-Type",
        header::CONTENT_LENGTH => b"Content-Length",
        header::CONNECTION => b"Connection",
        header::LOCATION => b"Location",
        header::CACHE_CONTROL => b"Cache-Control",
        header::LAST_MODIFIED => b"Last-Modified",
        header::EXPIRES => b"Expires",
        header::VARY => b"Vary",
        header::SET_COOKIE => b"Set-Cookie",
        header::ACCEPT_RANGES => b"Accept-Ranges",
        header::CONTENT_ENCODING => b"Content-Encoding",
        _ => return None,
    })
}

fn title_case(dst: &mut Vec<u8>, name: &[u8]) {
    dst.reserve(name.len());
    let mut upper = true;
    for &b in name {
        dst.push(if upper { b.to_ascii_uppercase() } else { b });
        upper = b == b'-';
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn written_out_names_are_title_case() {
        for name in [
            header::SERVER,
            header::DATE,
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONNECTION,
            header::LOCATION,
            header::CACHE_CONTROL,
            header::LAST_MODIFIED,
            header::EXPIRES,
            header::VARY,
            header::SET_COOKIE,
            header::ACCEPT_RANGES,
            header::CONTENT_ENCODING,
        ] {
            let mut converted = Vec::new();
            title_case(&mut converted, name.as_str().as_bytes());
            assert_eq!(title_cased(&name), Some(&converted[..]), "{name}");
        }
        assert_eq!(title_cased(&header::ETAG), None);
    }

    fn encode(
        status: u16,
        headers: &[(&str, &str)],
        body: BodyHint,
        method: Method,
        http10: bool,
    ) -> (String, BodyOut, bool) {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut dst = Vec::new();
        let status = StatusCode::from_u16(status).unwrap();
        let req = For {
            head: method == Method::HEAD,
            http10,
        };
        let (out, close) = head(&mut dst, status, None, &map, None, body, req).unwrap();
        let text = String::from_utf8(dst).unwrap();
        // The date changes: keep its name only.
        let text = text
            .lines()
            .map(|l| {
                if l.starts_with("Date: ") {
                    "Date: *"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        (text, out, close)
    }

    fn sized(n: u64) -> BodyHint {
        BodyHint {
            empty: n == 0,
            exact: Some(n),
        }
    }

    fn unknown() -> BodyHint {
        BodyHint {
            empty: false,
            exact: None,
        }
    }

    #[test]
    fn framing_follows_the_body_and_the_request() {
        let (t, out, close) = encode(200, &[("server", "nginx")], sized(3), Method::GET, false);
        assert_eq!(
            t,
            "HTTP/1.1 200 OK\nServer: nginx\nContent-Length: 3\nDate: *\n"
        );
        assert_eq!((out, close), (BodyOut::Length(3), false));

        let (t, out, _) = encode(200, &[], unknown(), Method::GET, false);
        assert!(t.contains("Transfer-Encoding: chunked"), "{t}");
        assert_eq!(out, BodyOut::Chunked);

        let (t, out, close) = encode(200, &[], unknown(), Method::GET, true);
        assert!(!t.contains("Transfer-Encoding"), "{t}");
        assert_eq!((out, close), (BodyOut::Close, true));
        // Kept alive by the request path, but the body ends with the connection: it says so.
        let ka = [("connection", "keep-alive")];
        let (t, out, close) = encode(200, &ka, unknown(), Method::GET, true);
        assert!(t.contains("Connection: close\n"), "{t}");
        assert!(!t.contains("keep-alive"), "{t}");
        assert_eq!((out, close), (BodyOut::Close, true));
        let (t, _, close) = encode(200, &ka, sized(2), Method::GET, true);
        assert!(t.contains("Connection: keep-alive\n") && !close, "{t}");

        // HEAD keeps the upstream's length and sends nothing.
        let (t, out, _) = encode(
            200,
            &[("content-length", "42")],
            sized(0),
            Method::HEAD,
            false,
        );
        assert!(t.contains("Content-Length: 42"), "{t}");
        assert_eq!(out, BodyOut::None);

        // 204 and 304: no body, no implicit length; a 304 keeps no stale length either.
        let (t, out, _) = encode(
            304,
            &[("content-length", "9")],
            sized(0),
            Method::GET,
            false,
        );
        assert!(!t.contains("Content-Length"), "{t}");
        assert_eq!(out, BodyOut::None);
        let (t, _, _) = encode(204, &[], sized(0), Method::GET, false);
        assert!(!t.contains("Content-Length"), "{t}");

        let (t, _, _) = encode(200, &[], sized(0), Method::GET, false);
        assert!(t.contains("Content-Length: 0"), "{t}");
    }

    #[test]
    fn upstream_spelling_is_kept_except_for_nginx_own_names() {
        let mut map = http::HeaderMap::new();
        map.insert(header::ETAG, HeaderValue::from_static("1"));
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static("x"));
        map.insert(header::SERVER, HeaderValue::from_static("s"));
        let raw = RawNames::Head(bytes::Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nEtAg: 1\r\ncontent-type: x\r\n\r\n",
        ));
        let mut dst = Vec::new();
        let req = For {
            head: false,
            http10: false,
        };
        head(
            &mut dst,
            StatusCode::OK,
            None,
            &map,
            Some(&raw),
            sized(0),
            req,
        )
        .unwrap();
        let text = String::from_utf8(dst).unwrap();
        assert!(text.contains("\r\nEtAg: 1\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Type: x\r\n"), "{text}");
        assert!(text.contains("\r\nServer: s\r\n"), "{text}");
    }

    #[test]
    fn connection_close_and_names_in_title_case() {
        let (t, _, close) = encode(
            404,
            &[
                ("connection", "close"),
                ("x-some-thing", "v"),
                ("transfer-encoding", "chunked"),
            ],
            sized(1),
            Method::GET,
            false,
        );
        assert!(t.starts_with("HTTP/1.1 404 Not Found\n"), "{t}");
        assert!(t.contains("Connection: close\nX-Some-Thing: v\n"), "{t}");
        assert!(!t.contains("Transfer-Encoding"), "{t}");
        assert!(close);
    }
}
