//! A raw HTTP/1 client for tests: sends exact bytes and reads the response as it arrived.
//!
//! No client library sits in between, so malformed requests reach the server byte for byte and
//! the test sees the status line, headers and body the server wrote. Every read is bounded by a
//! timeout; a server that never answers gives `response: None`, not a hung test.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a single exchange may take before the client gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawResponse {
    /// The status line without its line ending, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// The status code (0 if the status line has none).
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, with chunked framing removed.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What came back for one request.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The first final response (interim 1xx other than 101 are skipped), if a whole one arrived.
    pub response: Option<RawResponse>,
    /// Every byte read from the connection.
    pub raw: Vec<u8>,
    /// The server closed the connection (EOF or reset) while we were reading.
    pub closed: bool,
    /// The timeout expired before the response (or the close, when waiting for it) arrived.
    pub timed_out: bool,
}

impl Exchange {
    /// The status code, or None if no response arrived.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    /// The raw bytes as lossy text, for assertion messages.
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// Sends `request` on a new connection and reads one response (framed by its headers).
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Exchange {
    run(addr, request, false, DEFAULT_TIMEOUT)
}

/// Sends `request` on a new connection and reads until the server closes it or `timeout` expires;
/// the first response is parsed from what arrived. For malformed input, which must end the
/// connection.
pub fn exchange_until_close(addr: SocketAddr, request: &[u8], timeout: Duration) -> Exchange {
    run(addr, request, true, timeout)
}

fn run(addr: SocketAddr, request: &[u8], until_close: bool, timeout: Duration) -> Exchange {
    let head_request = request.starts_with(b"HEAD ");
    let mut ex = Exchange {
        response: None,
        raw: Vec::new(),
        closed: false,
        timed_out: false,
    };
    let deadline = Instant::now() + timeout;
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(_) => {
            ex.closed = true;
            return ex;
        }
    };
    // A server that stops reading must not hang the test in write_all.
    let _ = stream.set_write_timeout(Some(timeout));
    // The server may answer (and close) before reading everything, e.g. a 414 for a long URI:
    // a failed write is part of the outcome, the response may still be readable.
    let _ = stream.write_all(request);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if ex.response.is_none() {
            ex.response = parse_response(&ex.raw, head_request, false).map(|(r, _)| r);
            if ex.response.is_some() && !until_close {
                return ex;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            ex.timed_out = true;
            break;
        }
        // Cannot fail: the duration is non-zero.
        let _ = stream.set_read_timeout(Some(deadline - now));
        match stream.read(&mut chunk) {
            Ok(0) => {
                ex.closed = true;
                break;
            }
            Ok(n) => ex.raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                ex.timed_out = true;
                break;
            }
            Err(_) => {
                ex.closed = true;
                break;
            }
        }
    }
    if ex.response.is_none() {
        // At EOF a response without length framing ends here.
        ex.response = parse_response(&ex.raw, head_request, ex.closed).map(|(r, _)| r);
    }
    ex
}

/// Parses the first final response in `raw`; returns it and the bytes it used, or None if it
/// is not complete yet. `at_eof`: the connection ended, so an unframed body ends here.
pub fn parse_response(
    raw: &[u8],
    head_request: bool,
    at_eof: bool,
) -> Option<(RawResponse, usize)> {
    let mut start = 0;
    loop {
        let rest = &raw[start..];
        let head_len = find(rest, b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&rest[..head_len - 4]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or("").to_string();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .map(|l| match l.split_once(':') {
                Some((n, v)) => (n.to_string(), v.trim().to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect();
        let mut resp = RawResponse {
            status_line,
            status,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) && status != 101 {
            start += head_len;
            continue;
        }
        let body_start = start + head_len;
        let body = &raw[body_start..];
        if head_request || status == 204 || status == 304 || status == 101 {
            return Some((resp, body_start));
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            let (decoded, used) = decode_chunked(body)?;
            resp.body = decoded;
            return Some((resp, body_start + used));
        }
        if let Some(cl) = resp.header("content-length") {
            let n: usize = cl.parse().ok()?;
            if body.len() < n {
                return None;
            }
            resp.body = body[..n].to_vec();
            return Some((resp, body_start + n));
        }
        if !at_eof {
            return None;
        }
        resp.body = body.to_vec();
        return Some((resp, raw.len()));
    }
}

/// Every complete final response in `raw`, in order (pipelining, keepalive); `at_eof` as for
/// [`parse_response`], for the last one.
pub fn parse_all_responses(raw: &[u8], at_eof: bool) -> Vec<RawResponse> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some((resp, used)) = parse_response(rest, false, at_eof) {
        out.push(resp);
        rest = &rest[used..];
        if rest.is_empty() {
            break;
        }
    }
    out
}

/// Decodes a complete chunked body; None if incomplete or malformed.
fn decode_chunked(mut body: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = body.len();
    let mut out = Vec::new();
    loop {
        let eol = find(body, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            // Trailers end with an empty line.
            let end = find(body, b"\r\n\r\n")
                .map(|i| i + 4)
                .or_else(|| body.starts_with(b"\r\n").then_some(2))?;
            let used = total - body.len() + end;
            return Some((out, used));
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
