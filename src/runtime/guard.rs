//! The request-head guard: a read-side filter in front of hyper that holds back each request head
//! until it is complete and checks what hyper's parser would otherwise decide differently from
//! nginx, above all the framing ambiguities behind request smuggling:
//!
//! - `Content-Length` together with `Transfer-Encoding`, or `Content-Length` twice: 400;
//! - `Transfer-Encoding` other than exactly `chunked`: 501 (400 in HTTP/1.0, or when repeated);
//! - `HTTP/2.0` and above on HTTP/1: 505; `HTTP/1.2`..`HTTP/1.99` are read as HTTP/1.1 (nginx);
//! - a head larger than `large_client_header_buffers` N×SIZE in all: 400 (Request Header Or Cookie
//!   Too Large), or 414 when the request line alone does not fit.
//!
//! A rejected head never reaches hyper as is: it is replaced by a synthetic request carrying a
//! per-process secret header with the status, so the answer (nginx's page, `Connection: close`)
//! goes out in order after earlier pipelined responses; everything after it is read and dropped.
//! Bodies pass straight through; the guard only follows their framing (length, chunks) to find
//! the next head. After a request asking for `Upgrade`, it steps aside for the connection.
//!
//! It also records what hyper's parsed request loses (header-name spelling, a `#fragment`) in
//! secret headers that `request` takes off into a [`RawHead`] ([`take_added`]), and it times
//! `client_header_timeout` ([`Guard::header_timeout`]) in hyper's place.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::status::ConnTrack;

/// Header lines a request may have. nginx has no count limit (only
/// `large_client_header_buffers`); above this the guard answers 400 (Request Header Or Cookie
/// Too Large).
pub const MAX_HEADERS: usize = 1000;

/// Header lines hyper parses (its default `max_headers`; more answers 431). Raising hyper's limit
/// makes it allocate and fill two header index arrays of that length per request (~11k
/// instructions and two 32 KiB allocations at 1,000), so the guard keeps every head within it:
/// lines past [`KEPT_HEADERS`] travel packed in one secret header that [`take_added`] unpacks.
pub const HYPER_HEADERS: usize = 100;

/// The most header lines the guard adds to a head (`RawHead`'s names, target and extra lines).
pub const ADDED_HEADERS: usize = 3;

/// Header lines passed to hyper as they are; the rest go in the extra-lines header.
const KEPT_HEADERS: usize = HYPER_HEADERS - ADDED_HEADERS;

/// Headers parsed on the stack by the guard; longer heads retry on the heap.
pub const STACK_HEADERS: usize = 128;

/// The per-process secret in the names of the headers the guard adds.
fn secret() -> u64 {
    static SECRET: OnceLock<u64> = OnceLock::new();
    *SECRET.get_or_init(|| fastrand::u64(..))
}

/// How every secret header name starts.
const SECRET_PREFIX: &str = "x-nginx-rs-";

fn secret_name(kind: &str) -> http::HeaderName {
    let name = format!("{SECRET_PREFIX}{kind}-{:016x}", secret());
    // Lowercase letters, digits and '-' only: always a valid header name.
    http::HeaderName::from_bytes(name.as_bytes()).unwrap_or(http::header::WARNING)
}

/// The header the synthetic request carries: `x-nginx-rs-reject-<random>: <status>`.
pub fn reject_header() -> &'static http::HeaderName {
    static NAME: OnceLock<http::HeaderName> = OnceLock::new();
    NAME.get_or_init(|| secret_name("reject"))
}

/// Carries the client's header names as sent, in order, separated by spaces.
fn names_header() -> &'static http::HeaderName {
    static NAME: OnceLock<http::HeaderName> = OnceLock::new();
    NAME.get_or_init(|| secret_name("names"))
}

/// Carries the header lines past [`KEPT_HEADERS`], each as `<name length>:<name><value
/// length>:<value>` (lengths in decimal): values may hold any visible byte.
fn extra_header() -> &'static http::HeaderName {
    static NAME: OnceLock<http::HeaderName> = OnceLock::new();
    NAME.get_or_init(|| secret_name("extra"))
}

/// Carries the request target as sent when it has a `#fragment` (http::Uri drops it).
fn target_header() -> &'static http::HeaderName {
    static NAME: OnceLock<http::HeaderName> = OnceLock::new();
    NAME.get_or_init(|| secret_name("target"))
}

/// What hyper's request loses of the head as the client sent it: the spelling of header names
/// (nginx forwards them as received) and a `#fragment` in the target (nginx passes it on in
/// `$request_uri`). The guard adds it to the head as secret headers; [`take_added`] removes
/// them before anything else looks at the request.
#[derive(Clone, Debug, Default)]
pub struct RawHead {
    /// Header names as sent, in order (`None`: all were lower case).
    pub names: Option<RawNames>,
    /// The request target as sent, when it has a fragment.
    pub target: Option<String>,
}

/// The client's header names as sent, in order.
#[derive(Clone, Debug)]
pub enum RawNames {
    /// Separated by spaces: the guard's secret header, on hyper's requests.
    Joined(http::HeaderValue),
    /// The request head itself (nginx-rs's own HTTP/1 server keeps it anyway: the header values
    /// are slices of it): each header line starts with its name.
    Head(bytes::Bytes),
}

impl RawNames {
    /// The names, in order.
    pub fn iter(&self) -> Names<'_> {
        match self {
            RawNames::Joined(v) => Names::Joined(v.as_bytes()),
            RawNames::Head(head) => {
                // Past the empty lines a request may start with, and the request line.
                let start = head.iter().position(|&b| b != b'\r' && b != b'\n');
                let rest = start
                    .and_then(|s| memchr::memchr(b'\n', &head[s..]).map(|e| &head[s + e + 1..]))
                    .unwrap_or_default();
                Names::Lines(rest)
            }
        }
    }
}

/// Iterator over [`RawNames`]: what is left of the list or of the head's lines.
#[derive(Clone)]
pub enum Names<'a> {
    Joined(&'a [u8]),
    Lines(&'a [u8]),
}

impl<'a> Iterator for Names<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Names::Joined(rest) => {
                if rest.is_empty() {
                    return None;
                }
                let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
                let name = &rest[..end];
                *rest = rest.get(end + 1..).unwrap_or_default();
                Some(name)
            }
            Names::Lines(rest) => {
                // The head was parsed whole: every line up to the empty one is `name:value`.
                if rest.is_empty() || rest[0] == b'\r' || rest[0] == b'\n' {
                    return None;
                }
                let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                let line = &rest[..line_end];
                let name = &line[..memchr::memchr(b':', line).unwrap_or(line.len())];
                *rest = rest.get(line_end + 1..).unwrap_or_default();
                Some(name)
            }
        }
    }
}

/// What the guard added to a request head, taken off it by [`take_added`].
pub struct Added {
    /// The status of a head the guard rejected (the synthetic request's [`reject_header`]).
    pub reject: Option<u16>,
    pub raw: Option<RawHead>,
}

/// Removes every header the guard added to `headers`, putting the lines it packed back after
/// the others (in order), and reports a rejection. One pass over the names finds which are there, so that only those are looked up:
/// each lookup hashes a long secret name (~300 instructions), and most requests carry one of
/// them (`Host:` is capitalised by nearly every client).
pub fn take_added(headers: &mut http::HeaderMap) -> Added {
    let (mut reject, mut extra, mut names, mut target) = (false, false, false, false);
    for k in headers.keys() {
        if k.as_str().starts_with(SECRET_PREFIX) {
            reject |= k == reject_header();
            extra |= k == extra_header();
            names |= k == names_header();
            target |= k == target_header();
        }
    }
    let reject = reject.then(|| {
        headers
            .get(reject_header())
            .and_then(|code| std::str::from_utf8(code.as_bytes()).ok())
            .and_then(|c| c.parse().ok())
            .unwrap_or(400)
    });
    Added {
        reject,
        raw: RawHead::take_found(headers, extra, names, target),
    }
}

impl RawHead {
    /// `None` if there was no names or target header.
    fn take_found(
        headers: &mut http::HeaderMap,
        extra: bool,
        names: bool,
        target: bool,
    ) -> Option<RawHead> {
        if extra {
            if let Some(extra) = headers.remove(extra_header()) {
                unpack_extra(extra.as_bytes(), headers);
            }
        }
        // Kept as the header value itself: no copy.
        let names = names
            .then(|| headers.remove(names_header()))
            .flatten()
            .map(RawNames::Joined);
        let target = target
            .then(|| headers.remove(target_header()))
            .flatten()
            .and_then(|v| v.to_str().ok().map(str::to_string));
        (names.is_some() || target.is_some()).then_some(RawHead { names, target })
    }
}

/// Appends the lines packed by [`pack_extra`] to `headers`; stops at anything malformed (the
/// guard wrote it, so that does not happen).
fn unpack_extra(mut packed: &[u8], headers: &mut http::HeaderMap) {
    fn field<'a>(packed: &mut &'a [u8]) -> Option<&'a [u8]> {
        let colon = packed.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&packed[..colon]).ok()?.parse().ok()?;
        let rest = &packed[colon + 1..];
        let (value, tail) = (rest.get(..len)?, rest.get(len..)?);
        *packed = tail;
        Some(value)
    }
    while !packed.is_empty() {
        let (Some(name), Some(value)) = (field(&mut packed), field(&mut packed)) else {
            return;
        };
        // httparse accepted both, and http's rules for names and values are the same.
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
}

/// Writes `headers` as the extra-lines header's value (see [`extra_header`]).
fn pack_extra(headers: &[httparse::Header<'_>], out: &mut BytesMut) {
    out.extend_from_slice(extra_header().as_str().as_bytes());
    out.extend_from_slice(b": ");
    for h in headers {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(n.format(h.name.len()).as_bytes());
        out.extend_from_slice(b":");
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(n.format(h.value.len()).as_bytes());
        out.extend_from_slice(b":");
        out.extend_from_slice(h.value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Copies the checked `head` to `out`, with the secret headers of [`RawHead`] added before the
/// empty line when the head needs them, and the lines past [`KEPT_HEADERS`] packed into one.
fn annotate_into(head: &[u8], out: &mut BytesMut) {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let mut req = httparse::Request::new(&mut stack);
    let mut parsed = req.parse(head);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        heap = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        req = httparse::Request::new(&mut heap);
        parsed = req.parse(head);
    }
    let Ok(httparse::Status::Complete(_)) = parsed else {
        out.extend_from_slice(head);
        return;
    };
    annotate_parsed(head, &req, out);
}

/// [`annotate_into`] for a head already parsed into `req` (by [`check`], so a head is parsed
/// once by the guard).
fn annotate_parsed(head: &[u8], req: &httparse::Request<'_, '_>, out: &mut BytesMut) {
    let upper = req
        .headers
        .iter()
        .any(|h| h.name.bytes().any(|b| b.is_ascii_uppercase()));
    let fragment = req.path.filter(|p| p.starts_with('/') && p.contains('#'));
    // Where the empty line starts: the head ends in CRLF CRLF or LF LF (maybe mixed).
    let blank = if head.ends_with(b"\r\n") { 2 } else { 1 };
    let at = head.len() - blank;
    let many = req.headers.len() > KEPT_HEADERS;
    if !upper && fragment.is_none() && !many {
        out.extend_from_slice(head);
        return;
    }
    if many {
        // A header line starts with its name (httparse allows no leading whitespace).
        let cut = req.headers[KEPT_HEADERS].name.as_ptr() as usize - head.as_ptr() as usize;
        out.extend_from_slice(&head[..cut]);
        pack_extra(&req.headers[KEPT_HEADERS..], out);
    } else {
        out.extend_from_slice(&head[..at]);
    }
    if upper {
        out.extend_from_slice(names_header().as_str().as_bytes());
        out.extend_from_slice(b": ");
        for (i, h) in req.headers.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b" ");
            }
            out.extend_from_slice(h.name.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(target) = fragment {
        out.extend_from_slice(target_header().as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&head[at..]);
}

enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    /// After an upgrade request or input the guard does not follow: hyper decides alone.
    PassThrough,
    /// After a rejection: read and drop.
    Dead,
}

enum Chunk {
    /// Reading the size line (hex digits, then anything up to LF).
    Size {
        size: u64,
        digits: bool,
        ext: bool,
    },
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd(u8),
    /// Trailer lines up to an empty line; `len` = bytes on the current line.
    Trailer {
        len: usize,
    },
}

pub struct Guard<T> {
    inner: T,
    state: State,
    /// Bytes released to hyper but not yet read by it.
    out: BytesMut,
    /// The head being collected.
    head: Vec<u8>,
    /// `large_client_header_buffers`: (number, size).
    buffers: (usize, usize),
    eof: bool,
    /// After an HTTP/0.9 request: how much of the response head's final CRLF CRLF has gone by
    /// on the write side (4 = all of it). nginx answers HTTP/0.9 with the body alone, so the
    /// head hyper writes is dropped.
    strip: Option<u8>,
    /// Set by [`Guard::parking`]: the connection's requests, to tell when none is in flight.
    track: Option<Arc<ConnTrack>>,
    /// The last write or flush of the inner stream could not finish (bytes wait in hyper).
    write_blocked: bool,
    /// hyper was told "end of input" at an idle head boundary; see [`Guard::parking`].
    parked: bool,
    /// A head went to the current hyper connection (hyper takes an end of input before its
    /// first request for a broken one).
    released: bool,
    /// nginx's `client_header_timeout` (see [`Guard::header_timeout`]).
    header_timeout: Option<std::time::Duration>,
    /// Running while a head is awaited: armed on the first read that would block.
    header_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Guard<T> {
    pub fn new(inner: T, buffers: (usize, usize)) -> Self {
        Guard {
            inner,
            state: State::Head,
            out: BytesMut::new(),
            head: Vec::new(),
            buffers,
            eof: false,
            strip: None,
            track: None,
            write_blocked: false,
            parked: false,
            released: false,
            header_timeout: None,
            header_timer: None,
        }
    }

    /// nginx's `client_header_timeout`: a head must arrive whole within `timeout` of the first
    /// read that found it incomplete (or found nothing on a connection that has not sent a head
    /// yet); then reads fail with `TimedOut` and the connection closes without an answer.
    ///
    /// The guard times this rather than hyper, because it knows when a head is incomplete:
    /// hyper arms a timer (a boxed `Sleep` in tokio's wheel) for every request head it waits for,
    /// ~500 instructions per request, where heads nearly always arrive whole. A keepalive
    /// connection waiting between requests is bounded by parking and `keepalive_timeout` instead
    /// (`server.rs`).
    pub fn header_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.header_timeout = Some(timeout);
        self
    }

    /// On a read that would block: runs the head timer when a head is awaited; `true` once it
    /// has fired.
    fn header_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.header_timeout else {
            return false;
        };
        if !matches!(self.state, State::Head) || (self.head.is_empty() && self.released) {
            return false;
        }
        let timer = self
            .header_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Lets the guard end hyper's connection between requests so that an idle keepalive
    /// connection holds no HTTP state (hyper keeps 16 KiB of buffers per connection, never
    /// shrunk). When hyper asks for the next request head, the client has sent nothing, no
    /// request of `track` is in flight, no response bytes wait to be written, and the connection
    /// has waited like this since a sweep ago ([`super::park`]), the guard reports end of input:
    /// hyper ends the connection as a client would close an idle one, the guard skips the
    /// shutdown (the socket stays open), and `server.rs` takes the stream back
    /// ([`Guard::parked`]), waits for the client's next bytes (keepalive_timeout) and starts a
    /// new hyper connection on it. A connection idle between requests then costs its socket, its
    /// task and the guard (no buffers): nginx frees its buffers between requests the same way.
    pub fn parking(mut self, track: Arc<ConnTrack>) -> Self {
        self.track = Some(track);
        self
    }

    /// hyper's connection ended because the guard parked it (not a close by either side).
    pub fn parked(&self) -> bool {
        self.parked
    }

    /// Ready for a new hyper connection after [`Guard::parked`]: bytes hyper had read but not
    /// used (none, in practice: the guard hands hyper whole heads) are given to it again, and
    /// the buffers are freed while the connection waits.
    pub fn unpark(&mut self, unread: &[u8]) {
        self.parked = false;
        self.header_timer = None;
        self.released = false;
        self.out = BytesMut::from(unread);
        self.head = Vec::new();
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Between two requests with nothing pending either way, the state a connection can park
    /// in: see [`Guard::parking`].
    fn at_rest(&self) -> bool {
        self.released
            && matches!(self.state, State::Head)
            && self.head.is_empty()
            && self.out.is_empty()
            && !self.eof
            && !self.write_blocked
            && self.strip.is_none()
    }

    /// Run newly read bytes through the state machine.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::PassThrough => {
                    self.out.extend_from_slice(data);
                    return;
                }
                State::Dead => return,
                State::Body(n) => {
                    let k = (*n).min(data.len() as u64) as usize;
                    self.out.extend_from_slice(&data[..k]);
                    *n -= k as u64;
                    data = &data[k..];
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::Chunked(c) => {
                    let (used, done) = chunk_step(c, data);
                    self.out.extend_from_slice(&data[..used]);
                    data = &data[used..];
                    match done {
                        Some(true) => self.state = State::Head,
                        Some(false) => self.state = State::PassThrough,
                        None => {}
                    }
                }
                State::Head => {
                    // The usual case, a whole head in one read: checked where it lies, without
                    // collecting it first.
                    if self.head.is_empty() && simple_request(data).is_none() {
                        if let Some(end) = find_head_end(data, 0) {
                            self.release(&data[..end]);
                            // The rest belongs to the body or the next request.
                            data = &data[end..];
                            continue;
                        }
                    }
                    let start = self.head.len().saturating_sub(3);
                    self.head.extend_from_slice(data);
                    data = &[];
                    if let Some(target) = simple_request(&self.head) {
                        self.simple_request(target);
                        return;
                    }
                    match find_head_end(&self.head, start) {
                        Some(end) => {
                            let rest = self.head.split_off(end);
                            let head = std::mem::take(&mut self.head);
                            self.release(&head);
                            // The rest belongs to the body or the next request.
                            self.feed(&rest);
                            return;
                        }
                        None => {
                            let (num, size) = self.buffers;
                            if self.head.len() > num * size {
                                let code = if !self.head.contains(&b'\n') {
                                    414
                                } else {
                                    494
                                };
                                self.reject(code);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A complete head: check it and pass it on (or the synthetic rejection).
    fn release(&mut self, head: &[u8]) {
        match check(head, self.buffers, &mut self.out) {
            Ok(next) => {
                self.state = next;
                self.released = true;
                if let Some(t) = &self.track {
                    t.announce();
                }
            }
            Err(code) => self.reject(code),
        }
    }

    /// HTTP/0.9 (`GET /`): nginx serves it as a GET without headers and answers with the body
    /// alone; any other method is 400. Nothing after it is read.
    fn simple_request(&mut self, get: Option<Vec<u8>>) {
        self.strip = Some(0);
        match get {
            Some(target) => {
                self.head.clear();
                let mut head = b"GET ".to_vec();
                head.extend_from_slice(&target);
                head.extend_from_slice(b" HTTP/1.0\r\n\r\n");
                // A `#fragment` is recorded as for any head.
                annotate_into(&head, &mut self.out);
                self.state = State::Dead;
            }
            None => self.reject(400),
        }
    }

    fn reject(&mut self, code: u16) {
        self.head.clear();
        let synthetic = format!(
            "GET / HTTP/1.1\r\nHost: localhost\r\n{}: {code}\r\nConnection: close\r\n\r\n",
            reject_header()
        );
        self.out.extend_from_slice(synthetic.as_bytes());
        self.state = State::Dead;
    }
}

/// Position just after the blank line ending a head (CRLF CRLF or bare LF LF), searching from `from`.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    // Leading empty lines before the request line are allowed (and skipped by the parser).
    // From line end to line end (memchr), not byte by byte: a browser's head is ~700 bytes.
    for i in memchr::memchr_iter(b'\n', buf.get(from..)?).map(|at| from + at) {
        let prev_lf = if i >= 1 && buf[i - 1] == b'\n' {
            Some(i - 1)
        } else if i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n' {
            Some(i - 2)
        } else {
            None
        };
        // A blank line only ends the head once something other than blank lines came first.
        if let Some(p) = prev_lf {
            if buf[..p].iter().any(|&b| b != b'\r' && b != b'\n') {
                return Some(i + 1);
            }
        }
    }
    None
}

/// nginx's checks on a complete head. `Ok(state)` = how to read what follows.
/// The request line of an HTTP/0.9 request (`METHOD URI` and the line end, no version), once
/// complete: `Some(Some(target))` for GET, `Some(None)` for any other method (nginx: 400).
pub fn simple_request(head: &[u8]) -> Option<Option<Vec<u8>>> {
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let end = start + memchr::memchr(b'\n', &head[start..])?;
    let line = &head[start..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (method, target) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !target.starts_with(b"/") {
        return None;
    }
    Some((method == b"GET").then(|| target.to_vec()))
}

/// Header lines without a colon that are a bare name (`Name`) read as `Name:` with an empty
/// value, as nginx's parser does; `None` if there is none.
pub fn repair_colonless(head: &[u8]) -> Option<Vec<u8>> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let mut out = Vec::with_capacity(head.len() + 8);
    let mut changed = false;
    let mut seen_request_line = false;
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    for line in lines.by_ref() {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !seen_request_line {
            seen_request_line = !text.is_empty();
        } else if text.is_empty() {
            out.extend_from_slice(line);
            break;
        } else if text.iter().all(tchar) {
            out.extend_from_slice(text);
            out.push(b':');
            out.extend_from_slice(&line[text.len()..]);
            changed = true;
            continue;
        }
        out.extend_from_slice(line);
    }
    for line in lines {
        out.extend_from_slice(line);
    }
    changed.then_some(out)
}

/// Checks a complete head. When it passes, it goes to `out` as hyper is to read it (annotated,
/// see [`annotate_into`]); when it is rejected, nothing is written.
fn check(head: &[u8], buffers: (usize, usize), out: &mut BytesMut) -> Result<State, u16> {
    let (num, size) = buffers;
    if head.len() > num * size {
        return Err(494);
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let mut req = httparse::Request::new(&mut stack);
    let mut parsed = req.parse(head);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        heap = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        req = httparse::Request::new(&mut heap);
        parsed = req.parse(head);
    }
    match parsed {
        // More lines than hyper is set to parse: nginx's "too large" answer rather than hyper's 431.
        Err(httparse::Error::TooManyHeaders) => return Err(494),
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::Version) => return version_fallback(head, buffers, out),
        Err(httparse::Error::HeaderName) => {
            if let Some(repaired) = repair_colonless(head) {
                return check(&repaired, buffers, out);
            }
            out.extend_from_slice(head);
            return Ok(State::PassThrough);
        }
        // hyper answers the rest itself (400, 431) and closes.
        _ => {
            out.extend_from_slice(head);
            return Ok(State::PassThrough);
        }
    }
    let next = framing(&req)?;
    annotate_parsed(head, &req, out);
    Ok(next)
}

/// What follows a parsed head (body framing, upgrade), or the status rejecting it.
fn framing(req: &httparse::Request<'_, '_>) -> Result<State, u16> {
    let f = request_framing(req)?;
    if f.upgrade {
        return Ok(State::PassThrough);
    }
    Ok(match f.body {
        BodyFraming::None | BodyFraming::Length(0) => State::Head,
        BodyFraming::Length(n) => State::Body(n),
        BodyFraming::Chunked => State::Chunked(Chunk::Size {
            size: 0,
            digits: false,
            ext: false,
        }),
        // hyper rejects it (400) and closes.
        BodyFraming::BadLength => State::PassThrough,
    })
}

/// How a request body is framed, by the head's `Content-Length` / `Transfer-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// A `Content-Length` that is not a number (400).
    BadLength,
}

/// What nginx reads from a head's framing headers ([`request_framing`]).
pub struct Framing {
    pub body: BodyFraming,
    /// The head asks for an `Upgrade`.
    pub upgrade: bool,
}

/// nginx's framing rules for a parsed request head (also used by nginx-rs's own HTTP/1 server,
/// `super::h1`): `Content-Length` twice, or with `Transfer-Encoding`, is 400; a
/// `Transfer-Encoding` other than `chunked` is 501 (400 in HTTP/1.0 or when repeated).
pub fn request_framing(req: &httparse::Request<'_, '_>) -> Result<Framing, u16> {
    let http10 = req.version == Some(0);
    let mut cl: Option<&[u8]> = None;
    let mut cl_count = 0;
    let mut te: Option<&[u8]> = None;
    let mut te_count = 0;
    let mut upgrade = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            cl_count += 1;
            cl = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_count += 1;
            te = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if cl_count > 1 {
        return Err(400);
    }
    if let Some(te) = te {
        if http10 || te_count > 1 {
            return Err(400);
        }
        if !trim(te).eq_ignore_ascii_case(b"chunked") {
            return Err(501);
        }
        if cl.is_some() {
            return Err(400);
        }
        return Ok(Framing {
            body: BodyFraming::Chunked,
            upgrade,
        });
    }
    let body = match cl {
        None => BodyFraming::None,
        // Digits only: `+5` parses as a `u64` in Rust, not in nginx.
        Some(v) => match Some(trim(v))
            .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::BadLength,
        },
    };
    Ok(Framing { body, upgrade })
}

/// A request line whose version httparse refused ([`version_fix`]).
pub enum VersionFix {
    /// `HTTP/2.0` and up on HTTP/1: 505.
    Unsupported,
    /// `HTTP/1.2`..`HTTP/1.9`: nginx reads it as HTTP/1.1; the minor digit is at this offset.
    ReadAsHttp11(usize),
    /// Not a version nginx accepts either: 400.
    Bad,
}

/// nginx's view of a version httparse refused (it knows only HTTP/1.0 and 1.1).
pub fn version_fix(head: &[u8]) -> VersionFix {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(at) = line.windows(6).rposition(|w| w == b" HTTP/") else {
        return VersionFix::Bad;
    };
    let version = &line[at + 6..];
    let Some(dot) = version.iter().position(|&b| b == b'.') else {
        return VersionFix::Bad;
    };
    let (major, minor) = (&version[..dot], &version[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.len() <= 3 && s.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) {
        return VersionFix::Bad;
    }
    let major: u32 = std::str::from_utf8(major)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if major >= 2 {
        return VersionFix::Unsupported;
    }
    // "1.0"/"1.1" failing here means the line is bad elsewhere.
    if major == 1 && minor.len() == 1 && minor[0] > b'1' {
        return VersionFix::ReadAsHttp11(at + 6 + dot + 1);
    }
    VersionFix::Bad
}

/// httparse knows only HTTP/1.0 and 1.1. nginx answers 505 from HTTP/2.0 up and reads
/// HTTP/1.2..1.99 as HTTP/1.1.
fn version_fallback(
    head: &[u8],
    buffers: (usize, usize),
    out: &mut BytesMut,
) -> Result<State, u16> {
    match version_fix(head) {
        VersionFix::Unsupported => Err(505),
        VersionFix::ReadAsHttp11(pos) => {
            // Same length: rewrite "1.x" to "1.1" in place and check again.
            let mut fixed = head.to_vec();
            fixed[pos] = b'1';
            check(&fixed, buffers, out)
        }
        // hyper answers 400.
        VersionFix::Bad => {
            out.extend_from_slice(head);
            Ok(State::PassThrough)
        }
    }
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Follow chunked framing over `data`. Returns (bytes consumed, `Some(true)` at the end of the
/// body, `Some(false)` on framing the guard does not follow).
fn chunk_step(c: &mut Chunk, data: &[u8]) -> (usize, Option<bool>) {
    let mut i = 0;
    while i < data.len() {
        match c {
            Chunk::Size { size, digits, ext } => {
                let b = data[i];
                i += 1;
                if b == b'\n' {
                    if !*digits {
                        return (i, Some(false));
                    }
                    *c = if *size == 0 {
                        Chunk::Trailer { len: 0 }
                    } else {
                        Chunk::Data(*size)
                    };
                } else if !*ext && b.is_ascii_hexdigit() {
                    let Some(v) = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add((b as char).to_digit(16).unwrap_or(0) as u64))
                    else {
                        return (i, Some(false));
                    };
                    *size = v;
                    *digits = true;
                } else {
                    // `;ext`, spaces, CR: anything up to the LF.
                    *ext = true;
                }
            }
            Chunk::Data(n) => {
                let k = (*n).min((data.len() - i) as u64) as usize;
                i += k;
                *n -= k as u64;
                if *n == 0 {
                    *c = Chunk::DataEnd(0);
                }
            }
            Chunk::DataEnd(seen) => {
                let b = data[i];
                i += 1;
                match (b, *seen) {
                    (b'\r', 0) => *seen = 1,
                    (b'\n', _) => {
                        *c = Chunk::Size {
                            size: 0,
                            digits: false,
                            ext: false,
                        }
                    }
                    _ => return (i, Some(false)),
                }
            }
            Chunk::Trailer { len } => {
                let b = data[i];
                i += 1;
                if b == b'\n' {
                    if *len == 0 {
                        return (i, Some(true));
                    }
                    *len = 0;
                } else if b != b'\r' {
                    *len += 1;
                }
            }
        }
    }
    (i, None)
}

impl<T: AsyncRead + Unpin> AsyncRead for Guard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let k = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out.split_to(k));
                return Poll::Ready(Ok(()));
            }
            if this.eof || this.parked {
                return Poll::Ready(Ok(()));
            }
            // Uninitialised on purpose: zeroing 16 KiB on every poll (Pending ones included) was
            // half of all instructions per proxied request (callgrind, issue 7).
            let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
            let mut rb = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    let park = this.at_rest()
                        && this.track.as_ref().is_some_and(|t| t.idle_wait(cx.waker()));
                    if park {
                        // End of input, as far as hyper can tell: it ends the connection.
                        this.parked = true;
                        return Poll::Ready(Ok(()));
                    }
                    if this.header_timed_out(cx) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "client timed out while reading client request headers",
                        )));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        // EOF: whatever partial head there is goes to hyper, which reports it.
                        this.eof = true;
                        if matches!(this.state, State::Head) {
                            let head = std::mem::take(&mut this.head);
                            this.out.extend_from_slice(&head);
                        }
                        continue;
                    }
                    this.feed(rb.filled());
                    if this.head.is_empty() {
                        // No head in progress: the next one gets a fresh timer.
                        this.header_timer = None;
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Guard<T> {
    /// While the response head to an HTTP/0.9 request goes by: how many bytes of `buf` belong
    /// to it (they are dropped). `None`: not stripping.
    fn strip_head(&mut self, buf: &[u8]) -> Option<usize> {
        let mut m = self.strip.filter(|&m| m < 4)?;
        let mut i = 0;
        while i < buf.len() && m < 4 {
            m = match (m, buf[i]) {
                (0 | 2, b'\r') | (1 | 3, b'\n') => m + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            i += 1;
        }
        self.strip = Some(m);
        Some(i)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !buf.is_empty() {
            if let Some(n) = self.strip_head(buf) {
                return Poll::Ready(Ok(n));
            }
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_blocked = r.is_pending();
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.strip.is_some_and(|m| m < 4) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_blocked = r.is_pending();
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_blocked = r.is_pending();
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parked {
            // hyper closes what it believes is an idle connection the client ended: the
            // connection goes on with the next hyper (see `Guard::parking`).
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, bool) {
        let mut g = Guard::new((), (4, 1024));
        // Feed byte by byte as well as whole, to exercise every split point.
        for b in input {
            g.feed(std::slice::from_ref(b));
        }
        let dead = matches!(g.state, State::Dead);
        (strip_raw(&g.out), dead)
    }

    /// The output without the RawHead lines (tested on their own below).
    fn strip_raw(out: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(out);
        let prefix = format!("{}: ", names_header());
        let mut kept = String::new();
        for line in text.split_inclusive('\n') {
            if !line.starts_with(&prefix) {
                kept.push_str(line);
            }
        }
        kept.into_bytes()
    }

    #[test]
    fn lines_past_hyper_limit_are_packed_and_restored() {
        // 150 lines (spellings, a repeated name, values with spaces and colons): what hyper
        // parses (at most HYPER_HEADERS lines) plus take_added gives every line back in order.
        let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..149 {
            let name = if i % 50 == 7 {
                "X-Dup".to_string()
            } else {
                format!("X-H{i}")
            };
            head.push_str(&format!("{name}: v {i}: x\t;12:\r\n"));
        }
        head.push_str("\r\n");
        let mut g = Guard::new((), (64, 8192));
        g.feed(head.as_bytes());
        let mut slots = [httparse::EMPTY_HEADER; HYPER_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        assert!(matches!(
            req.parse(&g.out),
            Ok(httparse::Status::Complete(_))
        ));
        let mut map = http::HeaderMap::new();
        for h in req.headers.iter() {
            let name = http::HeaderName::from_bytes(h.name.as_bytes()).unwrap();
            map.append(name, http::HeaderValue::from_bytes(h.value).unwrap());
        }
        let raw = take_added(&mut map).raw.expect("names recorded");
        assert_eq!(map.len(), 150);
        let mut want = vec![("host".to_string(), "a".to_string())];
        for i in 0..149 {
            let name = if i % 50 == 7 {
                "x-dup".to_string()
            } else {
                format!("x-h{i}")
            };
            want.push((name, format!("v {i}: x\t;12:")));
        }
        for (name, _) in &want {
            let got: Vec<_> = map
                .get_all(name.as_str())
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            let expected: Vec<_> = want
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(got, expected, "{name}");
        }
        let names = raw.names.expect("upper-case names");
        assert_eq!(names.iter().count(), 150);
    }

    #[test]
    fn raw_names_and_fragment_are_recorded() {
        let mut g = Guard::new((), (4, 1024));
        g.feed(b"GET /a?b#frag HTTP/1.1\r\nHost: a\r\nX-Real-IP: 1\r\nx-low: 2\r\n\r\n");
        let text = String::from_utf8_lossy(&g.out).into_owned();
        let expected = format!(
            "GET /a?b#frag HTTP/1.1\r\nHost: a\r\nX-Real-IP: 1\r\nx-low: 2\r\n{}: Host X-Real-IP x-low\r\n{}: /a?b#frag\r\n\r\n",
            names_header(),
            target_header()
        );
        assert_eq!(text, expected);
        // All lower case and no fragment: nothing added.
        let mut g = Guard::new((), (4, 1024));
        g.feed(b"GET / HTTP/1.0\nhost: a\n\n");
        assert_eq!(&g.out[..], b"GET / HTTP/1.0\nhost: a\n\n");
        // take_added removes both headers.
        let mut h = http::HeaderMap::new();
        h.insert(names_header(), http::HeaderValue::from_static("Host"));
        h.insert(target_header(), http::HeaderValue::from_static("/#x"));
        h.insert("host", http::HeaderValue::from_static("a"));
        let raw = take_added(&mut h).raw.unwrap();
        let names: Vec<&[u8]> = raw.names.iter().flat_map(|n| n.iter()).collect();
        assert_eq!(names, [&b"Host"[..]]);
        assert_eq!(raw.target.as_deref(), Some("/#x"));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn names_are_read_off_a_head_as_off_a_list() {
        let head = bytes::Bytes::from_static(
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Dup:1\nx-dup: 2\r\nEmpty:\r\n\r\n",
        );
        let head = RawNames::Head(head);
        let from_head: Vec<&[u8]> = head.iter().collect();
        let list = RawNames::Joined(http::HeaderValue::from_static("Host X-Dup x-dup Empty"));
        let from_list: Vec<&[u8]> = list.iter().collect();
        assert_eq!(from_head, [&b"Host"[..], b"X-Dup", b"x-dup", b"Empty"]);
        assert_eq!(from_head, from_list);
    }

    fn rejected(input: &[u8]) -> Option<u16> {
        let (out, dead) = run(input);
        let text = String::from_utf8_lossy(&out).into_owned();
        let marker = format!("{}: ", reject_header());
        dead.then(|| {
            text.split(&marker)
                .nth(1)
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0)
        })
    }

    #[test]
    fn framing_conflicts_are_rejected() {
        assert_eq!(rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), Some(400));
        assert_eq!(rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"), Some(400));
        assert_eq!(
            rejected(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
            ),
            Some(400)
        );
        assert_eq!(
            rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Some(501)
        );
        assert_eq!(rejected(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), Some(505));
        assert_eq!(rejected(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
    }

    #[test]
    fn pipelined_bodies_are_followed() {
        let input = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        let (out, dead) = run(input);
        assert!(dead, "third request must be rejected");
        let text = String::from_utf8_lossy(&out);
        assert!(text
            .starts_with("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /b "));
        assert!(text.contains("0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n"));
        // A body that looks like a head is not mistaken for one.
        let (_, dead) = run(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 60\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(!dead);
    }

    #[test]
    fn bad_request_lines_go_to_hyper() {
        let (out, dead) = run(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!dead);
        assert_eq!(out, b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn colonless_header_lines_get_an_empty_value() {
        let (out, dead) = run(b"GET / HTTP/1.1\r\nHost: a\r\nBadLine\r\nX-A: 1\r\n\r\n");
        assert!(!dead);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nHost: a\r\nBadLine:\r\nX-A: 1\r\n\r\n"
        );
        // Not a bare name (a space, an obs-fold): left for hyper to refuse.
        let (out, _) = run(b"GET / HTTP/1.1\r\nHost: a\r\nBad Line\r\n\r\n");
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: a\r\nBad Line\r\n\r\n");
    }

    #[test]
    fn http_09_is_a_get_answered_without_head() {
        let (out, dead) = run(b"GET /x?y\r\n");
        assert!(dead);
        assert!(String::from_utf8_lossy(&out).starts_with("GET /x?y HTTP/1.0\r\n"));
        assert_eq!(rejected(b"POST /\r\n"), Some(400));
        let mut g = Guard::new(Vec::new(), (4, 1024));
        g.feed(b"GET /\r\n");
        let written = g.strip_head(b"HTTP/1.0 200 OK\r\nA: b\r").unwrap_or(0);
        assert_eq!(written, 22);
        assert_eq!(g.strip_head(b"\n\r\nbody"), Some(3));
        assert_eq!(g.strip_head(b"body"), None);
    }

    #[test]
    fn many_headers_are_still_checked() {
        let head = |n: usize, extra: &str| {
            let mut h = String::from("POST / HTTP/1.1\r\nHost: a\r\n");
            for i in 0..n {
                h.push_str(&format!("x{i}: {i}\r\n"));
            }
            h.push_str(extra);
            h.push_str("\r\n");
            h.into_bytes()
        };
        let mut g = Guard::new((), (64, 8192));
        g.feed(&head(
            300,
            "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        ));
        assert!(
            matches!(g.state, State::Dead),
            "smuggling checks apply past 128 headers"
        );
        let mut g = Guard::new((), (64, 8192));
        g.feed(&head(300, ""));
        assert!(matches!(g.state, State::Head));
        let mut g = Guard::new((), (64, 8192));
        g.feed(&head(MAX_HEADERS + 1, ""));
        assert!(matches!(g.state, State::Dead), "over MAX_HEADERS: rejected");
    }

    #[test]
    fn http_1_2_reads_as_1_1() {
        let (out, dead) = run(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n");
        assert!(!dead);
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }
}
