//! nginx-rs's own HTTP/1 server side, for plain-TCP client connections (TLS connections, HTTP/2
//! and h2c stay on hyper behind the head guard, `server.rs`).
//!
//! One task per connection runs [`serve`]: read a request head into the connection's buffer,
//! parse and check it once ([`head`]: nginx's rules, shared with the guard), run the request
//! path (`request::handle_request`), write the response ([`encode`], then its body), and go
//! on with the next head, which may already be in the buffer (pipelining). Compared with hyper
//! plus the guard in front of it, a head is parsed once instead of twice, the header values are
//! slices of the read buffer, nothing is copied between the two, and the connection holds one
//! small read buffer while busy and none while idle.
//!
//! Timeouts, as nginx's: `client_header_timeout` from the first read that found a head
//! incomplete (or nothing yet on a new connection), then the connection closes without an
//! answer; `keepalive_timeout` between requests (counted from when the connection parks: it
//! waits for a sweep first, [`super::park`], so that a busy connection arms no timer per
//! request); `send_timeout` while a write makes no progress.
//!
//! Request bodies ([`body`]) read from the same buffer and socket as the request path polls
//! them; `100 Continue` goes out on the first read. A body the request path left unread is
//! read and dropped before the next request, as nginx discards it. After a `101 Switching
//! Protocols`, the socket and the bytes after the head go to the proxy's tunnel
//! ([`OnUpgrade`]).

mod body;
mod date;
mod encode;
mod head;

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncWrite;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

pub use body::RequestBody;
use body::{Decoder, Expect, Shared, Step};
pub use encode::SpelledNames;
use encode::{BodyHint, BodyOut};

use super::body::{Body, ClientBody};
use super::client_tcp::ClientTcp;
use super::finish;
use super::guard::{Added, BodyFraming};
use super::handshake::Prefixed;
use super::request::{self, CloseSilently};
use super::server::{ConnState, H1Limits};
use super::status::RequestMark;

/// Room kept for a read: below this, the buffer is grown (or reclaimed) before reading.
const MIN_READ: usize = 256;

/// What a body being discarded is read into at a time.
const DISCARD_READ: usize = 4096;

/// Response bodies in frames up to this size are copied next to the head (one write for
/// both); larger ones are written from where they are.
const COPY_MAX: usize = 4096;

/// Serves HTTP/1 requests on a plain client connection until it closes, or, with `rest`, until
/// it parks: then its socket is given back out of tokio, for a [`super::dormant`] set to hold
/// until the next request. `prefix`: bytes already read from it (after a PROXY protocol
/// header). `resumed`: the connection comes back from such a set (it has served requests).
///
/// The connection's state is built at the call and the future holds only that: this future is
/// what an idle connection keeps (as an `async fn`, it also kept every argument it was given).
pub fn serve(
    tcp: ClientTcp,
    prefix: Vec<u8>,
    state: Arc<ConnState>,
    shutdown: watch::Receiver<bool>,
    limits: H1Limits,
    rest: bool,
    resumed: bool,
) -> impl Future<Output = Option<Resting>> + Send {
    let mut conn = Conn::new(tcp, BytesMut::from(&prefix[..]), state, shutdown, limits);
    async move {
        let mut first = !resumed;
        loop {
            // Boxed, and only while busy: the request path's future is large (~2.5 KB), and
            // inline it would make every connection's task that large, idle ones included. One
            // allocation per run of requests, none per request.
            let end = Box::pin(conn.busy(first)).await;
            first = false;
            match end {
                Busy::Parked => {
                    super::park::note_parked();
                    let keepalive = conn.limits.keepalive_timeout?;
                    if *conn.shutdown.borrow() {
                        return None;
                    }
                    if rest {
                        match conn.into_rest(keepalive) {
                            Ok(resting) => return resting,
                            // Another handle shares the socket (a body still being read).
                            Err(back) => conn = back,
                        }
                    }
                    if !conn.parked(keepalive).await {
                        return None;
                    }
                }
                Busy::Over => return None,
                Busy::Upgrade(tx) => {
                    let Conn { tcp, buf, .. } = conn;
                    let _ = tx.send(Prefixed::new(buf.to_vec(), tcp));
                    return None;
                }
            }
        }
        // The socket closes with its last handle: now, or when a request body still being
        // discarded after a 413 is done (nginx's lingering close keeps reading it too).
    }
}

/// A parked connection's socket, out of tokio, and how long it may wait for its next request.
pub struct Resting {
    pub tcp: std::net::TcpStream,
    pub keepalive_timeout: std::time::Duration,
}

/// The client connection after a `101 Switching Protocols`: the bytes the client sent after
/// its request head, then the socket.
pub type Upgraded = Prefixed<ClientTcp>;

/// A request extension on `Upgrade` requests: the client connection, once the `101` has gone
/// out ([`OnUpgrade::take`], then await it).
#[derive(Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    /// The connection's receiver (`None` after the first call).
    pub fn take(&self) -> Option<oneshot::Receiver<Upgraded>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What follows a response.
enum Next {
    KeepAlive,
    Close,
    Upgrade(oneshot::Sender<Upgraded>),
}

/// How a run of requests ended.
enum Busy {
    /// The client went quiet between requests: the connection waits without its buffers.
    Parked,
    /// Closed (by either side, a timeout, a graceful stop).
    Over,
    /// `101 Switching Protocols`: the connection goes to the tunnel.
    Upgrade(oneshot::Sender<Upgraded>),
}

/// What waiting for a request head gave.
enum Read {
    Head(Box<head::Head>),
    /// A head nginx rejects: the status, and whether it came in HTTP/0.9.
    Reject(u16, bool),
    Parked,
    Over,
}

/// A request made from its head ([`Conn::request`]).
struct Built {
    req: Request<ClientBody>,
    added: Added,
    /// The body's state, shared with the request path's reader (when there is a body).
    shared: Option<Arc<Shared>>,
    /// An `Upgrade` request's way to the tunnel.
    upgrade_tx: Option<oneshot::Sender<Upgraded>>,
}

struct Conn {
    tcp: ClientTcp,
    /// Read and not yet used: the rest of a head, a body, pipelined requests.
    buf: BytesMut,
    /// How far the current head was searched for its end.
    scanned: usize,
    state: Arc<ConnState>,
    shutdown: watch::Receiver<bool>,
    limits: H1Limits,
    /// Bytes written of the response being sent.
    written: u64,
}

impl Conn {
    fn new(
        tcp: ClientTcp,
        buf: BytesMut,
        state: Arc<ConnState>,
        shutdown: watch::Receiver<bool>,
        limits: H1Limits,
    ) -> Conn {
        Conn {
            tcp,
            buf,
            scanned: 0,
            state,
            shutdown,
            limits,
            written: 0,
        }
    }

    /// A parked connection's socket out of tokio (`None`: tokio failed to let go of it, and it
    /// is closed); the connection back when another handle shares the socket. A connection
    /// parks with nothing buffered, so only the socket carries over.
    // The connection comes back by value, once per park at most, and is moved straight back
    // into the serving loop's variable: boxing it would add an allocation for nothing.
    #[allow(clippy::result_large_err)]
    fn into_rest(self, keepalive_timeout: std::time::Duration) -> Result<Option<Resting>, Conn> {
        let Conn {
            tcp,
            state,
            shutdown,
            limits,
            ..
        } = self;
        match tcp.into_std() {
            Ok(tcp) => Ok(tcp.ok().map(|tcp| Resting {
                tcp,
                keepalive_timeout,
            })),
            Err(tcp) => Err(Conn::new(tcp, BytesMut::new(), state, shutdown, limits)),
        }
    }

    /// Requests, one after the other, until the connection parks or ends.
    async fn busy(&mut self, mut first: bool) -> Busy {
        loop {
            let next = match self.read_head(first).await {
                Read::Head(head) => self.exchange(head).await,
                Read::Reject(code, simple) => {
                    self.reject(code, simple).await;
                    Next::Close
                }
                Read::Parked => return Busy::Parked,
                Read::Over => return Busy::Over,
            };
            first = false;
            match next {
                Next::KeepAlive if !*self.shutdown.borrow() => {}
                Next::KeepAlive | Next::Close => return Busy::Over,
                Next::Upgrade(tx) => return Busy::Upgrade(tx),
            }
        }
    }

    /// The next request head, or why there is none.
    async fn read_head(&mut self, first: bool) -> Read {
        let buffers = self.limits.large_header_buffers;
        let mut deadline = None;
        loop {
            if !self.buf.is_empty() {
                match head::take(&mut self.buf, &mut self.scanned, buffers) {
                    head::Parsed::Head(h) => return Read::Head(h),
                    head::Parsed::Reject(code) => return Read::Reject(code, false),
                    head::Parsed::RejectSimple => return Read::Reject(400, true),
                    head::Parsed::Partial => {}
                }
            } else if !first && deadline.is_none() {
                match self.next_request().await {
                    Some(true) => {}
                    Some(false) => return Read::Parked,
                    None => return Read::Over,
                }
            }
            // nginx's buffers: a head starts in `client_header_buffer_size` (1k), and one that
            // outgrows it moves to a `large_client_header_buffers` buffer (8k). Between requests
            // the buffer is the connection's alone again, and `reserve` reuses it in place.
            if self.buf.capacity() - self.buf.len() < MIN_READ {
                let room = if self.buf.is_empty() {
                    self.limits.header_buffer
                } else {
                    self.limits.large_header_buffers.1
                };
                self.buf.reserve(room.max(MIN_READ));
            }
            let (tcp, buf) = (&mut self.tcp, &mut self.buf);
            let read = std::future::poll_fn(|cx| {
                Poll::Ready(tokio_util::io::poll_read_buf(
                    Pin::new(&mut *tcp),
                    cx,
                    &mut *buf,
                ))
            })
            .await;
            let n = match read {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    let timeout = self.limits.header_timeout;
                    let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                    let nothing_yet = self.buf.is_empty();
                    let (tcp, buf) = (&mut self.tcp, &mut self.buf);
                    let read = std::future::poll_fn(|cx| {
                        tokio_util::io::poll_read_buf(Pin::new(&mut *tcp), cx, &mut *buf)
                    });
                    tokio::select! {
                        r = tokio::time::timeout_at(at, read) => match r {
                            Ok(r) => r,
                            // client_header_timeout: closed without an answer, as nginx does.
                            Err(_) => return Read::Over,
                        },
                        // A graceful stop closes connections that are between requests.
                        _ = self.shutdown.changed(), if nothing_yet => return Read::Over,
                    }
                }
            };
            match n {
                Ok(0) | Err(_) => return Read::Over,
                Ok(_) => {}
            }
        }
    }

    /// Between two requests: `Some(true)` once the client sent something, `Some(false)` when the
    /// connection should park, `None` when it is to close (keepalive off).
    async fn next_request(&mut self) -> Option<bool> {
        self.limits.keepalive_timeout?;
        let tcp = &self.tcp;
        let track = &self.state.track;
        // No timer while the connection is likely to be busy again soon: the park sweeper
        // wakes it after 10-20 ms (`super::park`).
        std::future::poll_fn(|cx| {
            if tcp.get_ref().poll_read_ready(cx).is_ready() {
                return Poll::Ready(Some(true));
            }
            if track.idle_wait(cx.waker()) {
                // The sweeper saw no request for 10-20 ms, but under load the event loop can
                // lag that much behind the socket: a request already there keeps the
                // connection serving instead of parking (and waking again at once).
                return Poll::Ready(Some(tcp.has_input()));
            }
            Poll::Pending
        })
        .await
    }

    /// A parked connection: no buffer, waiting for the client's next bytes for
    /// `keepalive_timeout`; false when it is to close (timeout, graceful stop).
    async fn parked(&mut self, keepalive: std::time::Duration) -> bool {
        self.buf = BytesMut::new();
        let tcp = self.tcp.get_ref();
        tokio::select! {
            r = std::future::poll_fn(|cx| tcp.poll_read_ready(cx)) => r.is_ok(),
            _ = tokio::time::sleep(keepalive) => false,
            _ = self.shutdown.changed() => false,
        }
    }

    /// The request for the request path, its body reading from this connection.
    fn request(&mut self, head: head::Head) -> Built {
        let head::Head {
            method,
            uri,
            version,
            headers,
            raw,
            body,
            upgrade,
            expect_continue,
            simple: _,
        } = head;
        let decoder = match body {
            BodyFraming::Length(n) if n > 0 => Some(Decoder::Length(n)),
            BodyFraming::Chunked => Some(Decoder::chunked()),
            _ => None,
        };
        let shared = decoder.map(|d| {
            let expect = if expect_continue {
                Expect::Continue(0)
            } else {
                Expect::No
            };
            Shared::new(std::mem::take(&mut self.buf), d, expect)
        });
        let req_body = match &shared {
            Some(s) => ClientBody::H1(RequestBody::new(s.clone(), self.tcp.share())),
            None => ClientBody::Empty,
        };
        let mut req = Request::new(req_body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        let upgrade_tx = upgrade.then(|| {
            let (tx, rx) = oneshot::channel();
            req.extensions_mut()
                .insert(OnUpgrade(Arc::new(Mutex::new(Some(rx)))));
            tx
        });
        Built {
            req,
            added: Added { reject: None, raw },
            shared,
            upgrade_tx,
        }
    }

    /// A request starts: counted, and the connection is Writing until the mark is dropped
    /// (`stub_status`), and not idle for the park sweeper.
    fn begin(&self) -> RequestMark {
        self.state.track.announce();
        self.state.track.begin()
    }

    /// One request and its response.
    async fn exchange(&mut self, head: Box<head::Head>) -> Next {
        let mark = self.begin();
        let head_req = head.method == Method::HEAD;
        let http10 = head.version == Version::HTTP_10;
        let simple = head.simple;
        // Built by a plain function: a value borrowed in an async fn stays in its state even
        // after it is moved on, and the request is 264 bytes.
        let Built {
            req,
            added,
            shared,
            upgrade_tx,
        } = self.request(*head);
        let (resp, pending) = match request::handle_request(req, added, &self.state).await {
            Ok(r) => r,
            Err(CloseSilently) => return Next::Close,
        };
        // The response starts: no `100 Continue` from here on. Was one asked for and not sent?
        let continue_unsent = shared.as_ref().is_some_and(|s| {
            let mut st = s.lock();
            let unsent = st.expect == Expect::Continue(0);
            st.expect = Expect::No;
            unsent
        });
        let status = resp.status();
        let written = self.respond(resp, head_req, http10, simple, pending).await;
        drop(mark);
        let Ok(close) = written else {
            return Next::Close;
        };
        // The read side comes back from the body, with whatever followed it; unless the
        // connection ends, when a discard of the body (after a 413, `request::DiscardAfter`)
        // may still be reading through it.
        if let Some(s) = shared {
            if close {
                return Next::Close;
            }
            let (decoder, buf) = {
                let mut st = s.lock();
                (st.decoder, std::mem::take(&mut st.buf))
            };
            self.buf = buf;
            // A client still waiting for `100 Continue` sends no body: nothing to discard.
            let unread = decoder != Decoder::Done;
            if unread && (continue_unsent || !self.discard(decoder).await) {
                return Next::Close;
            }
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(tx) = upgrade_tx {
                return Next::Upgrade(tx);
            }
        }
        if close || simple {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }

    /// A head nginx rejects: its error page, then the connection closes.
    async fn reject(&mut self, code: u16, simple: bool) {
        let mark = self.begin();
        let resp = request::rejected(code, &self.state);
        let _ = self.respond(resp, false, false, simple, None).await;
        drop(mark);
    }

    /// Reads and drops the rest of a request body nobody read; false if it did not end in time.
    async fn discard(&mut self, mut decoder: Decoder) -> bool {
        let until = Instant::now() + request::LINGERING_TIME;
        loop {
            match decoder.step(&mut self.buf) {
                Ok(Step::Data(_)) => continue,
                Ok(Step::End) => return true,
                Ok(Step::More) => {}
                Err(_) => return false,
            }
            // `More`: the buffer is used up.
            if self.buf.capacity() < 1024 {
                self.buf.reserve(DISCARD_READ);
            }
            let (tcp, buf) = (&mut self.tcp, &mut self.buf);
            let read = std::future::poll_fn(|cx| {
                tokio_util::io::poll_read_buf(Pin::new(&mut *tcp), cx, &mut *buf)
            });
            let at = until.min(Instant::now() + request::LINGERING_TIMEOUT);
            match tokio::time::timeout_at(at, read).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return false,
            }
        }
    }

    /// Writes a response; `Ok(close)`: whether the connection ends with it. `pending` learns
    /// how many bytes went out (the access log's `$bytes_sent`, `$body_bytes_sent`).
    async fn respond(
        &mut self,
        resp: Response<Body>,
        head_req: bool,
        http10: bool,
        simple: bool,
        pending: Option<finish::Pending>,
    ) -> Result<bool, ()> {
        self.written = 0;
        let (parts, mut body) = resp.into_parts();
        let mut out = out_buffer();
        let (mode, close) = if simple {
            // HTTP/0.9: the body alone.
            (BodyOut::Close, true)
        } else {
            let reason = parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| r.as_bytes());
            let hint = BodyHint {
                empty: body.is_end_stream(),
                exact: body.size_hint().exact(),
            };
            let req = encode::For {
                head: head_req,
                http10,
            };
            let spelled = parts.extensions.get::<SpelledNames>().map(|s| &s.0);
            encode::head(
                &mut out,
                parts.status,
                reason,
                &parts.headers,
                spelled,
                hint,
                req,
            )?
        };
        drop(parts);
        let head = out.len() as u64;
        let r = self.send_body(&mut out, &mut body, mode).await;
        give_back(out);
        // The body is done with (its end may hold the upstream connection back for the pool).
        drop(body);
        if let Some(p) = pending {
            let written = self.written;
            p.sent(head.min(written), written.saturating_sub(head));
        }
        r.map(|()| close)
    }

    /// The response body after the head in `out` (which it may join in one write).
    async fn send_body(
        &mut self,
        out: &mut Vec<u8>,
        body: &mut Body,
        mode: BodyOut,
    ) -> Result<(), ()> {
        if mode == BodyOut::None {
            return self.write(out, &[], b"").await;
        }
        let mut sent = 0u64;
        loop {
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
            let frame = match polled {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    // Nothing more right now: what is ready goes out while the body waits.
                    if !out.is_empty() {
                        self.write(out, &[], b"").await?;
                    }
                    body.frame().await
                }
            };
            let mut data = match frame {
                None => break,
                Some(Err(_)) => return Err(()),
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => d,
                    // Trailers are not passed on.
                    Err(_) => continue,
                },
            };
            if let BodyOut::Length(n) = mode {
                let left = n - sent;
                if data.len() as u64 > left {
                    // More than the length said: what fits goes, then the connection ends.
                    data.truncate(left as usize);
                    self.write(out, &data, b"").await?;
                    return Err(());
                }
            }
            sent += data.len() as u64;
            if !data.is_empty() {
                self.put(out, data, mode == BodyOut::Chunked).await?;
            }
            if body.is_end_stream() {
                break;
            }
        }
        if mode == BodyOut::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        self.write(out, &[], b"").await?;
        match mode {
            BodyOut::Length(n) if sent < n => Err(()),
            _ => Ok(()),
        }
    }

    /// Queues one piece of body: small ones are copied after what waits in `out`, large ones
    /// are written with it.
    async fn put(&mut self, out: &mut Vec<u8>, data: Bytes, chunked: bool) -> Result<(), ()> {
        if chunked {
            let mut hex = [0u8; 16];
            out.extend_from_slice(hex_len(data.len(), &mut hex));
            out.extend_from_slice(b"\r\n");
        }
        let tail: &[u8] = if chunked { b"\r\n" } else { b"" };
        if data.len() <= COPY_MAX && out.len() + data.len() <= 4 * COPY_MAX {
            out.extend_from_slice(&data);
            out.extend_from_slice(tail);
            return Ok(());
        }
        self.write(out, &data, tail).await
    }

    /// Writes `out`, then `data`, then `tail` (one `writev` when the socket takes them), with
    /// nginx's `send_timeout` between two writes that make progress; `out` is left empty.
    async fn write(&mut self, out: &mut Vec<u8>, data: &[u8], tail: &[u8]) -> Result<(), ()> {
        let timeout = self.limits.send_timeout;
        let (tcp, written) = (&mut self.tcp, &mut self.written);
        let mut parts: [&[u8]; 3] = [&out[..], data, tail];
        let mut sleep: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let r = std::future::poll_fn(|cx| loop {
            let first = parts.iter().position(|p| !p.is_empty());
            let Some(first) = first else {
                return Poll::Ready(Ok(()));
            };
            let iov = [
                IoSlice::new(parts[first]),
                IoSlice::new(parts.get(first + 1).copied().unwrap_or_default()),
                IoSlice::new(parts.get(first + 2).copied().unwrap_or_default()),
            ];
            let n = match Pin::new(&mut *tcp).poll_write_vectored(cx, &iov[..3 - first]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => n,
                Poll::Pending => {
                    let s = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if s.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(()));
                    }
                    return Poll::Pending;
                }
            };
            sleep = None;
            *written += n as u64;
            let mut n = n;
            for p in parts.iter_mut() {
                let k = n.min(p.len());
                *p = &p[k..];
                n -= k;
            }
        })
        .await;
        out.clear();
        r
    }
}

/// `len` in lower-case hex.
fn hex_len(mut len: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[len & 15];
        len >>= 4;
        if len == 0 {
            return &buf[i..];
        }
    }
}

thread_local! {
    /// One response-head buffer per thread, lent to a connection while it writes.
    static OUT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn out_buffer() -> Vec<u8> {
    let v = OUT.try_with(|o| o.take()).unwrap_or_default();
    if v.capacity() == 0 {
        Vec::with_capacity(1024)
    } else {
        v
    }
}

fn give_back(mut v: Vec<u8>) {
    if v.capacity() <= 16 * COPY_MAX {
        v.clear();
        let _ = OUT.try_with(|o| {
            let kept = o.take();
            o.set(if kept.capacity() >= v.capacity() {
                kept
            } else {
                v
            });
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunk_sizes_in_hex() {
        let mut b = [0u8; 16];
        assert_eq!(super::hex_len(0, &mut b), b"0");
        assert_eq!(super::hex_len(255, &mut b), b"ff");
        assert_eq!(super::hex_len(4096, &mut b), b"1000");
    }
}
