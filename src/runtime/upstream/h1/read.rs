//! The upstream response head: parsed with httparse, header values kept as slices of the one
//! buffer the head was read into (no copy), and the body framing decided as nginx does.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HEAD, 1xx, 204, 304: no body whatever the headers say.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
    /// `101 Switching Protocols`: the connection becomes a tunnel.
    Upgrade,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    /// The reason phrase when it is not the standard one for the status (nginx passes the
    /// upstream's status line on).
    pub reason: Option<Bytes>,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// HTTP/1.1 without `Connection: close`: the connection may carry another request once the
    /// body is read (nginx: `!u->headers_in.connection_close`).
    pub keepalive: bool,
}

/// Why a head is refused; each is nginx's `invalid_header` failure (502).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The status line is not `HTTP/1.x NNN ...`.
    NoValidHeader,
    InvalidHeader,
    /// The head does not fit in `proxy_buffer_size`.
    TooBig,
}

impl HeadError {
    /// nginx's error log words.
    pub fn message(self) -> &'static str {
        match self {
            HeadError::NoValidHeader => "upstream sent no valid HTTP/1.0 header",
            HeadError::InvalidHeader => "upstream sent invalid header",
            HeadError::TooBig => "upstream sent too big header",
        }
    }
}

/// Headers parsed on the stack; a longer head (nginx has no count limit) retries on the heap.
const STACK_HEADERS: usize = 64;
const MAX_HEADERS: usize = 8192;

/// Takes a complete head off the front of `buf`. `Ok(None)`: not complete yet (read more),
/// unless `buf` already holds `max` bytes.
///
/// One httparse pass: the parsed pieces are kept as offsets into `buf`, which then becomes the
/// head's shared `Bytes` (values are slices of it, not copies).
pub fn parse(
    buf: &mut BytesMut,
    head_request: bool,
    max: usize,
) -> Result<Option<Head>, HeadError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let mut resp = httparse::Response::new(&mut stack);
    let mut outcome = resp.parse(buf);
    if let Err(httparse::Error::TooManyHeaders) = outcome {
        heap = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        resp = httparse::Response::new(&mut heap);
        outcome = resp.parse(buf);
    }
    let len = match outcome {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max => return Err(HeadError::TooBig),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(classify(e)),
    };
    if len > max {
        return Err(HeadError::TooBig);
    }
    let code = resp.code.ok_or(HeadError::NoValidHeader)?;
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::NoValidHeader)?;
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let base = buf.as_ptr() as usize;
    // Every slice httparse hands back points into `buf`: its offset is its address minus base.
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let reason = resp
        .reason
        .filter(|r| status.canonical_reason() != Some(*r))
        .map(|r| at(r.as_bytes()));
    let mut fields = Vec::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| HeadError::InvalidHeader)?;
        fields.push((name, at(h.value)));
    }
    let bytes = buf.split_to(len).freeze();
    let slice = |(off, n): (usize, usize)| bytes.slice(off..off + n);
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, range) in fields {
        let value =
            HeaderValue::from_maybe_shared(slice(range)).map_err(|_| HeadError::InvalidHeader)?;
        headers.append(name, value);
    }
    let framing = framing(status, version, &headers, head_request)?;
    let keepalive =
        version == Version::HTTP_11 && !has_token(&headers, header::CONNECTION, b"close");
    Ok(Some(Head {
        status,
        reason: reason.map(slice),
        version,
        headers,
        framing,
        keepalive,
    }))
}

fn classify(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::Version | httparse::Error::Status => HeadError::NoValidHeader,
        _ => HeadError::InvalidHeader,
    }
}

/// RFC 9112 §6.3, as nginx applies it: chunked wins over a length; no length and no chunking
/// reads to the close.
fn framing(
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
    head_request: bool,
) -> Result<Framing, HeadError> {
    let code = status.as_u16();
    if code == 101 {
        return Ok(Framing::Upgrade);
    }
    if head_request || code < 200 || code == 204 || code == 304 {
        return Ok(Framing::Empty);
    }
    if version == Version::HTTP_11 && has_token(headers, header::TRANSFER_ENCODING, b"chunked") {
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(v.as_bytes())
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(HeadError::InvalidHeader)?;
        if length.is_some_and(|l| l != n) {
            return Err(HeadError::InvalidHeader);
        }
        length = Some(n);
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &[u8]) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(token))
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, head_request: bool) -> Result<Option<Head>, HeadError> {
        let mut b = BytesMut::from(text.as_bytes());
        parse(&mut b, head_request, 4096)
    }

    #[test]
    fn framing_follows_status_and_headers() {
        let f = |t: &str, h: bool| head(t, h).ok().flatten().map(|h| (h.framing, h.keepalive));
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Some((Framing::Length(5), true))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Some((Framing::Empty, true))
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            Some((Framing::Chunked, true))
        );
        assert_eq!(
            f(
                "HTTP/1.1 204 No Content\r\nConnection: Close\r\n\r\n",
                false
            ),
            Some((Framing::Empty, false))
        );
        assert_eq!(
            f("HTTP/1.0 200 OK\r\n\r\n", false),
            Some((Framing::Close, false))
        );
        assert_eq!(
            f(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                false
            ),
            Some((Framing::Upgrade, true))
        );
    }

    #[test]
    fn unusual_reason_phrases_are_kept() {
        let reason = |t: &str| head(t, false).ok().flatten().and_then(|h| h.reason);
        assert_eq!(
            reason("HTTP/1.1 503 Whatever\r\n\r\n").as_deref(),
            Some(&b"Whatever"[..])
        );
        assert_eq!(reason("HTTP/1.1 503 Service Unavailable\r\n\r\n"), None);
    }

    #[test]
    fn bad_heads_are_nginx_failures() {
        assert_eq!(
            head("FOO\r\n\r\n", false).err(),
            Some(HeadError::NoValidHeader)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", false).err(),
            Some(HeadError::InvalidHeader)
        );
        assert_eq!(
            head(
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            )
            .err(),
            Some(HeadError::InvalidHeader)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).err(),
            Some(HeadError::InvalidHeader)
        );
        let mut big = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
        big.extend_from_slice(&[b'a'; 100]);
        assert_eq!(parse(&mut big, false, 64).err(), Some(HeadError::TooBig));
        assert!(head("HTTP/1.1 200 OK\r\nX: 1\r\n", false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn many_headers_and_leftover_bytes() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..200 {
            text.push_str(&format!("X-{i}: {i}\r\n"));
        }
        text.push_str("Content-Length: 2\r\n\r\nhi");
        let mut b = BytesMut::from(text.as_bytes());
        let h = parse(&mut b, false, 1 << 20).unwrap().unwrap();
        assert_eq!(h.headers.len(), 201);
        assert_eq!(h.framing, Framing::Length(2));
        assert_eq!(&b[..], b"hi");
    }
}
