//! Listeners, the accept loop and the client-side HTTP/1 connection (hyper's server half).
//!
//! # Who rejects what
//! The head guard ([`super::guard`]) runs first and gives nginx's status for framing conflicts
//! (`Content-Length` + `Transfer-Encoding`, `Content-Length` twice: 400; unknown
//! `Transfer-Encoding`: 501), `HTTP/2.0`+ on HTTP/1 (505), `HTTP/1.2`.. (read as 1.1) and heads over
//! `large_client_header_buffers` (400/414). hyper (httparse) then answers these itself and closes;
//! nginx's status in brackets where it differs:
//! - malformed request line, bad method token, bad URI characters: 400 (nginx 400);
//! - space or NUL in a header name, obs-fold continuation lines, empty name: 400 (nginx 400); a
//!   line without a colon: 400 (nginx ignores the line);
//! - bad chunk sizes: the body read fails, 400 (nginx 400); negative or non-numeric
//!   `Content-Length`: 400 (nginx 400);
//! - more than 100 header lines: 431 (nginx has no count limit, only the buffer sizes);
//! - HTTP/0.9 (`GET /` alone): 400 (nginx answers in HTTP/0.9).
//!
//! hyper's automatic responses have an empty body instead of nginx's HTML page.
//! Everything else nginx checks is done in `request.rs` with nginx's status and page.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use super::ctx::ConnInfo;
use super::Live;
use crate::plan::{ClientLimits, ListenAddr};

/// State shared by every request on one client connection.
pub struct ConnState {
    pub live: Arc<ArcSwap<Live>>,
    pub info: Arc<ConnInfo>,
    /// The listen address this connection was accepted on (selects the ListenGroup).
    pub listen: ListenAddr,
    pub requests: AtomicU64,
    /// This connection in the `stub_status` counters (Reading/Writing/Waiting).
    pub track: Arc<super::status::ConnTrack>,
}

impl ConnState {
    /// Keepalive limits: those of the default server of this listen address.
    pub fn limits_for_keepalive(&self, live: &Live) -> ClientLimits {
        default_limits(live, &self.listen)
    }
}

fn default_limits(live: &Live, listen: &ListenAddr) -> ClientLimits {
    let idx = live.router.listen_index(listen).unwrap_or(0);
    let s = live.router.select_server(idx, None).server;
    live.plan
        .http
        .servers
        .get(s)
        .map(|s| s.conf.client.clone())
        .unwrap_or_default()
}

static CONNECTION_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Accept on `listener` until `shutdown` turns true. Each connection holds a clone of `done` so the
/// caller can wait for all of them; `permits` caps open connections (`worker_connections`).
pub async fn accept_loop(
    listener: TcpListener,
    addr: ListenAddr,
    live: Arc<ArcSwap<Live>>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
    permits: Arc<Semaphore>,
) {
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: nginx logs and keeps accepting later.
                    tracing::error!("accept() failed ({})", super::proxy::os_error(&e));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        if *shutdown.borrow() {
            return;
        }
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        // accepts, handled, active: from here until the task ends (stub_status).
        let guard = super::status::global().accept();
        let shutdown = shutdown.clone();
        let done = done.clone();
        let live = live.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            // PROXY protocol header and TLS handshake first (handshake.rs), bounded by
            // client_header_timeout as nginx's handshake.
            let edge = {
                let current = live.load_full();
                let timeout = default_limits(&current, &addr).header_timeout;
                let mut stop = shutdown.clone();
                tokio::select! {
                    e = Box::pin(super::handshake::accept(stream, &addr, &current, timeout)) => e,
                    // A graceful stop does not wait for handshakes in progress.
                    _ = stop.changed() => None,
                }
            };
            if let Some((io, edge)) = edge {
                let state = Arc::new(ConnState {
                    live,
                    info: Arc::new(ConnInfo {
                        remote,
                        local,
                        id: CONNECTION_SERIAL.fetch_add(1, Ordering::Relaxed),
                        handshake: edge,
                    }),
                    listen: addr,
                    requests: AtomicU64::new(0),
                    track: Arc::new(super::status::ConnTrack::new(guard)),
                });
                serve_connection(io, state.clone(), shutdown).await;
                // The connection is gone even if a request task still holds `state`.
                state.track.close();
            }
            drop(permit);
            drop(done);
        });
    }
}

async fn serve_connection(
    stream: super::handshake::ClientIo,
    state: Arc<ConnState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = {
        let live = state.live.load();
        default_limits(&live, &state.listen)
    };
    if state.info.handshake.h2 != super::handshake::H2::No {
        // Boxed: the task of an HTTP/1 connection should not carry an HTTP/2 state's size.
        return Box::pin(super::handshake::serve_h2(stream, state, shutdown, limits)).await;
    }
    let mut builder = hyper::server::conn::http1::Builder::new();
    let (num, size) = limits.large_header_buffers;
    builder
        .timer(TokioTimer::new())
        // hyper starts on a request's first bytes (see below), so this is nginx's
        // client_header_timeout: the rest of the head must come within it.
        .header_read_timeout(limits.header_timeout)
        .keep_alive(limits.keepalive_timeout.is_some())
        // Response names with no recorded spelling (nginx-rs's own, and every upstream one
        // since the upstream client is nginx-rs's own) go out as nginx writes its own:
        // `Content-Type`, `Server`.
        .title_case_headers(true)
        // hyper's default `max_headers` (100, on the stack): the guard packs lines past it, so
        // heads of up to `guard::MAX_HEADERS` lines still pass; see `guard::HYPER_HEADERS`.
        .max_buf_size((num * size).max(8192) + size);
    let mut guard = super::guard::Guard::new(stream, limits.large_header_buffers);
    if limits.keepalive_timeout.is_some() {
        guard = guard.parking(state.track.clone());
    }
    // One hyper connection per run of requests: when the client goes quiet between two
    // requests the guard parks hyper's connection (`Guard::parking`), and the stream waits here,
    // holding no HTTP state, for the next request's first bytes.
    loop {
        let st = state.clone();
        let service = service_fn(move |req| super::request::handle(req, st.clone()));
        let io = SendTimeout::new(guard, limits.send_timeout);
        let mut conn = Box::pin(
            builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        );
        if *shutdown.borrow() {
            conn.as_mut().graceful_shutdown();
        }
        let ended = tokio::select! {
            r = conn.as_mut() => r,
            _ = shutdown.changed() => {
                // Graceful: finish the request in flight (if any), close when idle.
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        };
        if ended.is_err() {
            return;
        }
        // `None`: the connection was upgraded (WebSocket) and belongs to the tunnel now.
        let Some(parts) = Pin::into_inner(conn).into_parts() else {
            return;
        };
        let hyper::server::conn::http1::Parts { io, read_buf, .. } = parts;
        guard = io.into_inner().inner;
        if !guard.parked() || *shutdown.borrow() {
            return; // closed by either side, or a graceful stop with nothing in flight
        }
        guard.unpark(&read_buf);
        // hyper's read buffer (8 KiB at least) must not be held while the connection waits.
        drop(read_buf);
        // nginx: keepalive_timeout while waiting for a next request, client_header_timeout
        // for the first one.
        let wait = match limits.keepalive_timeout {
            Some(k) if state.requests.load(Ordering::Relaxed) > 0 => k,
            _ => limits.header_timeout,
        };
        let readable = tokio::select! {
            r = tokio::time::timeout(wait, guard.get_ref().readable()) => matches!(r, Ok(Ok(()))),
            _ = shutdown.changed() => false,
        };
        if !readable {
            return;
        }
    }
}

/// nginx's `send_timeout`: a write to the client that makes no progress for this long fails the
/// connection (the timer runs only while a write is blocked, as nginx's between two writes).
struct SendTimeout<T> {
    inner: T,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> SendTimeout<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        SendTimeout {
            inner,
            timeout,
            sleep: None,
        }
    }

    /// Called when a write is pending: arm the timer (once) and report whether it fired.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let t = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
        sleep.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "client timed out")
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                self.sleep = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                self.sleep = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                self.sleep = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
