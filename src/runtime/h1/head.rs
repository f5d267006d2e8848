//! Request heads on nginx-rs's own HTTP/1 connections: found in the read buffer, parsed once
//! with httparse, checked with nginx's rules (the same functions the head guard applies in front
//! of hyper), and turned into the `http` types with header values that are slices of the
//! buffer (no copies).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri, Version};

use crate::runtime::guard::{
    self, BodyFraming, RawHead, RawNames, VersionFix, MAX_HEADERS, STACK_HEADERS,
};
use crate::runtime::upstream::h1::read::header_name;

/// A request head as the request path takes it.
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// What the `http` types lose of the head as sent (name spelling, a `#fragment`).
    pub raw: Option<RawHead>,
    pub body: BodyFraming,
    /// The head asks for an `Upgrade` (WebSocket): the connection may be handed over.
    pub upgrade: bool,
    /// `Expect: 100-continue` on HTTP/1.1: `100 Continue` goes out when the body is first read.
    pub expect_continue: bool,
    /// HTTP/0.9 (`GET /`): the answer is the body alone, and nothing after it is read.
    pub simple: bool,
}

/// What the bytes read so far hold.
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    Head(Box<Head>),
    /// A head nginx rejects, with its status (494: "Request Header Or Cookie Too Large").
    Reject(u16),
    /// An HTTP/0.9 request nginx rejects (not a GET): 400, answered in HTTP/0.9.
    RejectSimple,
}

/// Takes the next head off the front of `buf` when it is complete. `scanned` remembers how far
/// earlier calls looked for the head's end (so a head arriving in pieces is not rescanned);
/// `buffers` is `large_client_header_buffers` (number, size).
pub fn take(buf: &mut BytesMut, scanned: &mut usize, buffers: (usize, usize)) -> Parsed {
    if let Some(simple) = guard::simple_request(buf) {
        // Nothing after an HTTP/0.9 request is read.
        buf.clear();
        return match simple {
            Some(target) => simple_head(Bytes::from(target)),
            None => Parsed::RejectSimple,
        };
    }
    let Some(end) = guard::find_head_end(buf, scanned.saturating_sub(3)) else {
        *scanned = buf.len();
        let (num, size) = buffers;
        if buf.len() > num * size {
            // 414 when the request line alone does not fit, as nginx.
            return Parsed::Reject(if buf.contains(&b'\n') { 494 } else { 414 });
        }
        return Parsed::Partial;
    };
    *scanned = 0;
    parse(buf.split_to(end).freeze(), buffers)
}

/// A complete head.
fn parse(head: Bytes, buffers: (usize, usize)) -> Parsed {
    let (num, size) = buffers;
    if head.len() > num * size {
        return Parsed::Reject(494);
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let mut req = httparse::Request::new(&mut stack);
    let mut parsed = req.parse(&head);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        heap = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        req = httparse::Request::new(&mut heap);
        parsed = req.parse(&head);
    }
    match parsed {
        Ok(httparse::Status::Complete(_)) => {}
        // nginx has no line limit, only the buffer sizes: its "too large" answer.
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(494),
        Err(httparse::Error::Version) => {
            return match guard::version_fix(&head) {
                VersionFix::Unsupported => Parsed::Reject(505),
                VersionFix::ReadAsHttp11(at) => {
                    let mut fixed = head.to_vec();
                    fixed[at] = b'1';
                    parse(Bytes::from(fixed), buffers)
                }
                VersionFix::Bad => Parsed::Reject(400),
            };
        }
        Err(httparse::Error::HeaderName) => {
            return match guard::repair_colonless(&head) {
                Some(repaired) => parse(Bytes::from(repaired), buffers),
                None => Parsed::Reject(400),
            };
        }
        _ => return Parsed::Reject(400),
    }
    match build(&head, &req) {
        Ok(h) => Parsed::Head(Box::new(h)),
        Err(code) => Parsed::Reject(code),
    }
}

/// The `http` types of a parsed head, or the status nginx rejects it with.
fn build(head: &Bytes, req: &httparse::Request<'_, '_>) -> Result<Head, u16> {
    const BAD: u16 = 400;
    let framing = guard::request_framing(req)?;
    if framing.body == BodyFraming::BadLength {
        return Err(BAD);
    }
    let method = req.method.ok_or(BAD)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| BAD)?;
    let path = req.path.ok_or(BAD)?;
    let uri = Uri::from_maybe_shared(head.slice_ref(path.as_bytes())).map_err(|_| BAD)?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut spelled = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = header_name(h.name.as_bytes()).ok_or(BAD)?;
        spelled |= name.as_str() != h.name;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value)).map_err(|_| BAD)?;
        if name == header::EXPECT && value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            expect_continue = version == Version::HTTP_11;
        }
        headers.append(name, value);
    }
    // The head itself records the names as sent (a reference count, no copy).
    let names = spelled.then(|| RawNames::Head(head.clone()));
    let target = (path.starts_with('/') && path.contains('#')).then(|| path.to_string());
    let raw = (names.is_some() || target.is_some()).then_some(RawHead { names, target });
    Ok(Head {
        method,
        uri,
        version,
        headers,
        raw,
        body: framing.body,
        upgrade: framing.upgrade,
        expect_continue,
        simple: false,
    })
}

/// An HTTP/0.9 `GET target`: served as a GET without headers.
fn simple_head(target: Bytes) -> Parsed {
    let Ok(uri) = Uri::from_maybe_shared(target.clone()) else {
        return Parsed::Reject(400);
    };
    let raw = target.contains(&b'#').then(|| RawHead {
        names: None,
        target: Some(String::from_utf8_lossy(&target).into_owned()),
    });
    Parsed::Head(Box::new(Head {
        method: Method::GET,
        uri,
        version: Version::HTTP_10,
        headers: HeaderMap::new(),
        raw,
        body: BodyFraming::None,
        upgrade: false,
        expect_continue: false,
        simple: true,
    }))
}
