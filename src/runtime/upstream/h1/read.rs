//! The upstream response head: parsed with httparse, header values kept as slices of the one
//! buffer the head was read into (no copy), and the body framing decided as nginx does.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use smallvec::SmallVec;

use crate::runtime::guard::RawNames;

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
    /// The header names as the upstream spelled them, when a kept one is not in title case
    /// (`ETag`, `x-lower`): nginx passes them on as sent. `None` in the usual case.
    pub names: Option<RawNames>,
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
pub fn parse(
    buf: &mut BytesMut,
    head_request: bool,
    max: usize,
) -> Result<Option<Head>, HeadError> {
    parse_hiding(buf, head_request, max, &|_: &HeaderName| false)
}

/// [`parse`], leaving out of `Head::headers` the names `hide` picks (the proxy's hidden and
/// hop-by-hop headers), except in a `101` answer, whose `Upgrade` and `Connection` go on.
///
/// One httparse pass: the parsed pieces are kept as offsets into `buf`, which then becomes the
/// head's shared `Bytes` (values are slices of it, not copies). The framing and keepalive
/// headers are read off that pass too, and hidden names never enter the map: a `HeaderMap`
/// lookup or `remove` per name cost ~1k instructions per response.
pub fn parse_hiding(
    buf: &mut BytesMut,
    head_request: bool,
    max: usize,
    hide: &(dyn Fn(&HeaderName) -> bool + Sync),
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
    // A 101's `Upgrade` and `Connection` go on to the client: nothing is hidden there.
    let hiding = code != 101;
    let mut framing_headers = FramingHeaders::default();
    // On the stack for the usual head: kept until the head's bytes are frozen, then moved into
    // the map (a Vec here was one allocation per response).
    let mut fields: SmallVec<[(HeaderName, (usize, usize)); 24]> = SmallVec::new();
    let mut spelled = false;
    for h in resp.headers.iter() {
        let (name, title) =
            header_name_spelled(h.name.as_bytes()).ok_or(HeadError::InvalidHeader)?;
        framing_headers.see(&name, h.value);
        if !(hiding && hide(&name)) {
            spelled |= !title;
            fields.push((name, at(h.value)));
        }
    }
    let framing = framing(status, version, &framing_headers, head_request)?;
    let keepalive = version == Version::HTTP_11 && !framing_headers.close;
    let bytes = buf.split_to(len).freeze();
    let slice = |(off, n): (usize, usize)| bytes.slice(off..off + n);
    // Room for the two the proxy adds (`Server`, `Connection`): a full map regrows.
    let mut headers = HeaderMap::with_capacity(fields.len() + 2);
    for (name, range) in fields {
        let value =
            HeaderValue::from_maybe_shared(slice(range)).map_err(|_| HeadError::InvalidHeader)?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        reason: reason.map(slice),
        version,
        headers,
        framing,
        keepalive,
        names: spelled.then(|| RawNames::Head(bytes.clone())),
    }))
}

/// `Content-Type`, `X-Request-Id`: what nginx-rs writes for a name it has no spelling for.
fn is_title_case(name: &[u8]) -> bool {
    let mut start = true;
    name.iter().all(|&b| {
        let ok = if start {
            !b.is_ascii_lowercase()
        } else {
            !b.is_ascii_uppercase()
        };
        start = b == b'-';
        ok
    })
}

/// `HeaderName::from_bytes` for header names as sent, through a small per-thread cache: a
/// backend (or a client) repeats the same few names in every message, and parsing one
/// (lower-casing and matching it against the standard names) cost ~150 instructions, where a
/// cache hit is a compare and a clone.
pub(crate) fn header_name(raw: &[u8]) -> Option<HeaderName> {
    header_name_spelled(raw).map(|(name, _)| name)
}

/// [`header_name`], and whether `raw` is spelled in title case ([`is_title_case`]), kept in the
/// cache with the name.
fn header_name_spelled(raw: &[u8]) -> Option<(HeaderName, bool)> {
    const SLOTS: usize = 32;
    type Cache = [Option<(Box<[u8]>, HeaderName, bool)>; SLOTS];
    thread_local! {
        static NAMES: std::cell::RefCell<Cache> = const { std::cell::RefCell::new([const { None }; SLOTS]) };
    }
    let (first, last) = (raw.first().copied()?, raw.last().copied()?);
    let slot = (raw.len() ^ usize::from(first) ^ (usize::from(last) << 2)) % SLOTS;
    let parse = |raw: &[u8]| Some((HeaderName::from_bytes(raw).ok()?, is_title_case(raw)));
    let cached = NAMES.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        if let Some((seen, name, title)) = &cache[slot] {
            if **seen == *raw {
                return Some((name.clone(), *title));
            }
        }
        let (name, title) = parse(raw)?;
        cache[slot] = Some((raw.into(), name.clone(), title));
        Some((name, title))
    });
    match cached {
        Ok(Some(found)) => Some(found),
        // Not a valid name (or, never in practice, the cache unreachable): parse it here.
        _ => parse(raw),
    }
}

/// What the framing and keepalive decisions need from the header lines, gathered as they are
/// parsed.
#[derive(Default)]
struct FramingHeaders {
    /// `Transfer-Encoding` lists `chunked`.
    chunked: bool,
    /// `Connection` lists `close`.
    close: bool,
    /// The `Content-Length`, if any: `Err` when one is malformed or two disagree.
    length: Option<Result<u64, ()>>,
}

impl FramingHeaders {
    fn see(&mut self, name: &HeaderName, value: &[u8]) {
        if name == header::TRANSFER_ENCODING {
            self.chunked |= has_token(value, b"chunked");
        } else if name == header::CONNECTION {
            self.close |= has_token(value, b"close");
        } else if name == header::CONTENT_LENGTH {
            let n = std::str::from_utf8(value)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(());
            self.length = Some(match (self.length, n) {
                (Some(Err(())), _) | (_, Err(())) => Err(()),
                (Some(Ok(l)), Ok(n)) if l != n => Err(()),
                (_, Ok(n)) => Ok(n),
            });
        }
    }
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
    headers: &FramingHeaders,
    head_request: bool,
) -> Result<Framing, HeadError> {
    let code = status.as_u16();
    if code == 101 {
        return Ok(Framing::Upgrade);
    }
    if head_request || code < 200 || code == 204 || code == 304 {
        return Ok(Framing::Empty);
    }
    if version == Version::HTTP_11 && headers.chunked {
        return Ok(Framing::Chunked);
    }
    Ok(match headers.length {
        Some(Err(())) => return Err(HeadError::InvalidHeader),
        Some(Ok(0)) => Framing::Empty,
        Some(Ok(n)) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
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

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {

    #[test]
    fn title_case_names_need_no_spelling_record() {
        for name in ["Content-Type", "X-Request-Id", "Server", "A", "X-1"] {
            assert!(is_title_case(name.as_bytes()), "{name}");
        }
        for name in ["ETag", "x-lower", "X-MiXed", "content-Type"] {
            assert!(!is_title_case(name.as_bytes()), "{name}");
        }
    }

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
