//! Real HTTP/1 backends on 127.0.0.1 for tests, with nothing normalised.
//!
//! A hand-written reader takes the raw bytes off a `std::net::TcpListener`, so a test sees the
//! request line and header fields exactly as the proxy sent them (order, case, duplicates), and
//! each backend records every request it read so a test can also assert "nothing forwarded".
//! Plain threads, no async runtime: usable from any test, whatever runtime the proxy uses.
//!
//! ```ignore
//! let echo = Backend::echo();                      // answers with what it received
//! let one = Backend::named("one");                 // answers "one"
//! let slow = Backend::builder().status(503).delay(Duration::from_secs(2)).start();
//! // ... send requests through a proxy to echo.addr() ...
//! let got = echo.take_received();
//! assert_eq!(got[0].request_line, "GET / HTTP/1.0");
//! ```
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Largest request head the reader accepts; a proxy never sends more in these tests.
const MAX_HEAD: usize = 1 << 20;
/// How often an idle connection thread wakes up to check whether the backend was dropped.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// One request as the backend read it off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The request head exactly as received: request line through the empty line.
    pub head: Vec<u8>,
    /// The request line without its line ending, e.g. `GET /x HTTP/1.0`.
    pub request_line: String,
    /// Header fields in arrival order, names as sent, values with surrounding blanks trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, with chunked framing removed.
    pub body: Vec<u8>,
    /// Whether the body arrived with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The proxy's side of the connection, as the backend saw it.
    pub peer: SocketAddr,
    /// 1 for the first request on its connection, 2 for the next, ... (keepalive reuse).
    pub nth_on_connection: usize,
}

impl Received {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in arrival order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The method from the request line.
    pub fn method(&self) -> &str {
        self.request_line.split(' ').next().unwrap_or("")
    }

    /// The request target from the request line, e.g. `/a?b=c`.
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }

    /// The protocol from the request line, e.g. `HTTP/1.1`.
    pub fn version(&self) -> &str {
        self.request_line.split(' ').nth(2).unwrap_or("")
    }
}

/// What the backend answers with (status 200 unless [`BackendBuilder::status`] says otherwise).
#[derive(Clone, Debug)]
pub enum Reply {
    /// The raw request head followed by the decoded body, as `text/plain`.
    Echo,
    /// This text.
    Text(String),
    /// These bytes, `len` of them, generated (`a`..`z` repeating) - for large responses.
    Generated(usize),
    /// The whole response (status line, headers, body) exactly as this function writes it, for
    /// framings the other replies never use (no length, close-delimited, 304); status, headers
    /// and `Close::AfterResponse` add nothing to it.
    Raw(fn(&Received) -> Vec<u8>),
}

/// How the backend treats the connection after reading a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// HTTP/1.1 keepalive when the request allows it (the default).
    KeepAlive,
    /// Answer with `Connection: close`, then close.
    AfterResponse,
    /// Close without answering (the proxy sees an upstream that died mid-request).
    WithoutResponse,
}

/// Settings for a backend; [`Backend::builder`] starts one.
#[derive(Clone, Debug)]
pub struct BackendBuilder {
    bind: SocketAddr,
    reply: Reply,
    status: u16,
    delay: Duration,
    close: Close,
    headers: Vec<(String, String)>,
}

impl Default for BackendBuilder {
    fn default() -> Self {
        BackendBuilder {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            reply: Reply::Echo,
            status: 200,
            delay: Duration::ZERO,
            close: Close::KeepAlive,
            headers: Vec::new(),
        }
    }
}

impl BackendBuilder {
    /// Listen here instead of 127.0.0.1:0 (e.g. 127.0.0.1:5001 for the walkthrough).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// What to answer with.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Answer `text`.
    pub fn text(self, text: &str) -> Self {
        self.reply(Reply::Text(text.to_string()))
    }

    /// The response status code.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Wait this long after reading a request before answering (timeouts).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Connection behaviour after each request.
    pub fn close(mut self, close: Close) -> Self {
        self.close = close;
        self
    }

    /// An extra response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the backend; panics if it cannot listen (use [`Self::try_start`] for fixed ports).
    pub fn start(self) -> Backend {
        let bind = self.bind;
        self.try_start()
            .unwrap_or_else(|e| panic!("backend cannot listen on {bind}: {e}"))
    }

    /// Starts the backend, or says why it cannot listen.
    pub fn try_start(self) -> io::Result<Backend> {
        let listener = TcpListener::bind(self.bind)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config: self,
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        let accept_thread = thread::Builder::new()
            .name(format!("backend-{addr}"))
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(Backend {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }
}

/// State shared by the accept thread and the connection threads.
struct Shared {
    config: BackendBuilder,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn received(&self) -> MutexGuard<'_, Vec<Received>> {
        // A poisoned lock only means a connection thread panicked; the data is still usable.
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running backend; stops listening when dropped.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// Settings for a new backend (echo, 200, keepalive, 127.0.0.1:0 unless changed).
    pub fn builder() -> BackendBuilder {
        BackendBuilder::default()
    }

    /// A backend that answers with the exact request head and body it received.
    pub fn echo() -> Backend {
        Backend::builder().start()
    }

    /// A backend that answers its `name`.
    pub fn named(name: &str) -> Backend {
        Backend::builder().text(name).start()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received().clone()
    }

    /// Every request received so far, and forget them.
    pub fn take_received(&self) -> Vec<Received> {
        std::mem::take(&mut *self.shared.received())
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = shared.clone();
        // Connection threads are detached: they end on EOF, error, or when the backend stops.
        let _ = thread::Builder::new()
            .name("backend-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
            });
    }
}

/// Reads requests off one connection and answers them until it closes.
fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_read_timeout(Some(IDLE_POLL))?;
    let mut reader = Reader {
        buf: Vec::new(),
        stop: &shared.stop,
    };
    let mut nth = 0;
    loop {
        let Some(mut req) = read_request(&mut stream, &mut reader, peer)? else {
            return Ok(());
        };
        nth += 1;
        req.nth_on_connection = nth;
        shared.received().push(req.clone());
        let cfg = &shared.config;
        if !cfg.delay.is_zero() {
            thread::sleep(cfg.delay);
        }
        if cfg.close == Close::WithoutResponse {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        let keep_alive = cfg.close == Close::KeepAlive && wants_keepalive(&req);
        stream.write_all(&build_response(cfg, &req, keep_alive))?;
        if !keep_alive {
            let _ = stream.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
fn wants_keepalive(req: &Received) -> bool {
    let conn = req.header_all("connection").join(",").to_ascii_lowercase();
    let has = |token: &str| conn.split(',').any(|t| t.trim() == token);
    match req.version() {
        "HTTP/1.1" => !has("close"),
        _ => has("keep-alive"),
    }
}

fn build_response(cfg: &BackendBuilder, req: &Received, keep_alive: bool) -> Vec<u8> {
    let body: Vec<u8> = match &cfg.reply {
        Reply::Raw(write) => return write(req),
        Reply::Echo => [req.head.as_slice(), req.body.as_slice()].concat(),
        Reply::Text(t) => t.as_bytes().to_vec(),
        Reply::Generated(n) => (0..*n).map(|i| b'a' + (i % 26) as u8).collect(),
    };
    // 1xx and 204 have no body and no Content-Length (RFC 9110 8.6).
    let bodiless = (100..200).contains(&cfg.status) || cfg.status == 204;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\n",
        cfg.status,
        reason(cfg.status)
    );
    if !bodiless {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    for (n, v) in &cfg.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if req.method() != "HEAD" && !bodiless {
        out.extend_from_slice(&body);
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Buffered bytes of one connection, refilled from the socket as the parser needs them.
struct Reader<'a> {
    buf: Vec<u8>,
    stop: &'a AtomicBool,
}

impl Reader<'_> {
    /// Reads more bytes; `Ok(false)` on EOF or when the backend is stopping.
    fn fill(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    fn line(&mut self, stream: &mut TcpStream) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD || !self.fill(stream)? {
                return Err(invalid("connection ended inside a line"));
            }
        }
    }

    /// Takes exactly `n` bytes.
    fn exact(&mut self, stream: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill(stream)? {
                return Err(invalid("connection ended inside a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one request; `Ok(None)` when the connection ends cleanly between requests.
fn read_request(
    stream: &mut TcpStream,
    reader: &mut Reader<'_>,
    peer: SocketAddr,
) -> io::Result<Option<Received>> {
    let head_end = loop {
        if let Some(i) = find(&reader.buf, b"\r\n\r\n") {
            break i + 4;
        }
        if reader.buf.len() > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        if !reader.fill(stream)? {
            return Ok(None);
        }
    };
    let head: Vec<u8> = reader.buf.drain(..head_end).collect();
    let text = String::from_utf8_lossy(&head[..head_end - 4]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.to_string(), v.trim_matches([' ', '\t']).to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let mut req = Received {
        head,
        request_line,
        headers,
        body: Vec::new(),
        chunked: false,
        peer,
        nth_on_connection: 0,
    };
    let te = req.header_all("transfer-encoding").join(",");
    if te.to_ascii_lowercase().contains("chunked") {
        req.chunked = true;
        req.body = read_chunked(stream, reader)?;
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().map_err(|_| invalid("bad Content-Length"))?;
        req.body = reader.exact(stream, n)?;
    }
    Ok(Some(req))
}

fn read_chunked(stream: &mut TcpStream, reader: &mut Reader<'_>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = reader.line(stream)?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailer fields, then the empty line.
            while !reader.line(stream)?.is_empty() {}
            return Ok(body);
        }
        body.extend(reader.exact(stream, size)?);
        if !reader.line(stream)?.is_empty() {
            return Err(invalid("chunk data not followed by CRLF"));
        }
    }
}
