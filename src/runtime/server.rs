//! Listeners, the accept loop, and the choice of HTTP server per connection: plain HTTP/1
//! connections go to nginx-rs's own server ([`super::h1`]), which answers every malformed head
//! with nginx's status and page; TLS HTTP/1 connections to hyper behind the head guard; HTTP/2 and
//! h2c to hyper (`handshake::serve_h2`).
//!
//! # Who rejects what on hyper's HTTP/1 (TLS connections)
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
//! - HTTP/0.9 (`GET /`) alone: 400 (nginx answers in HTTP/0.9).
//!
//! hyper's automatic responses have an empty body instead of nginx's HTML page, and it answers
//! an HTTP/1.0 client with an `HTTP/1.0` status line (nginx: `HTTP/1.1`).
//! Everything else nginx checks is done in `request.rs` with nginx's status and page.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use super::client_tcp::ClientTcp;
use super::ctx::ConnInfo;
use super::dormant::Dormant;
use super::handshake::ClientIo;
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
    // This listener's parked plain HTTP/1 connections, outside tokio (`dormant`). Without one
    // (no epoll instance to be had) they park inside their tasks.
    let dormant = {
        let shutdown = shutdown.clone();
        Dormant::start(shutdown.clone(), move |asleep, dormant| {
            resume(asleep, dormant, &shutdown)
        })
        .ok()
    };
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
        let status = super::status::global().accept();
        let setup = Box::pin(set_up(
            stream,
            remote,
            local,
            addr.clone(),
            live.clone(),
            status,
            shutdown.clone(),
        ));
        let ending = Ending {
            permit,
            done: done.clone(),
            dormant: dormant.clone(),
        };
        tokio::spawn(connection(setup, shutdown.clone(), ending));
    }
}

/// A connection's handshakes, then its state; `None` when it ended on the way.
type SetUp = Pin<Box<dyn Future<Output = Option<(ClientIo, Arc<ConnState>)>> + Send>>;

/// One client connection's task. It holds a boxed future at each stage (set-up, then serving),
/// so a TLS or HTTP/2 connection that waits between requests costs its task header, the serving
/// future and the socket. A plain HTTP/1 connection that parks ends its task instead and sleeps
/// in its listener's dormant set ([`Ending::end`]), until [`resume`] gives it a new one.
async fn connection(setup: SetUp, shutdown: watch::Receiver<bool>, ending: Ending) {
    if let Some((io, state)) = setup.await {
        let rest = ending.dormant.is_some();
        let resting = serve_connection(io, state.clone(), shutdown, rest).await;
        ending.end(state, resting);
    }
}

/// What a connection's task holds beside its serving state, until the connection closes or
/// sleeps in its listener's dormant set.
struct Ending {
    permit: tokio::sync::OwnedSemaphorePermit,
    /// Keeps `accept_loop`'s caller waiting for this connection.
    done: mpsc::Sender<()>,
    dormant: Option<Arc<Dormant<Asleep>>>,
}

impl Ending {
    /// The connection closed, or (`resting`) parked and leaves its task for the dormant set.
    fn end(self, state: Arc<ConnState>, resting: Option<super::h1::Resting>) {
        let Ending {
            permit,
            done,
            dormant,
        } = self;
        if let (Some(resting), Some(dormant)) = (resting, dormant) {
            let Some(status) = state.track.suspend() else {
                return; // counted as closed already: the socket closes here
            };
            let mut info = (*state.info).clone();
            info.watch = None; // the next task's socket handle gets its own
            let asleep = Asleep {
                tcp: resting.tcp,
                live: state.live.clone(),
                info,
                listen: state.listen.clone(),
                requests: state.requests.load(Ordering::Relaxed),
                status,
                permit,
                done,
            };
            // Refused after a graceful stop: the connection closes, as nginx closes idle ones.
            let _ = dormant.hold(asleep, resting.keepalive_timeout);
            return;
        }
        // The connection is gone even if a request task still holds `state`.
        state.track.close();
        drop((permit, done));
    }
}

/// A plain HTTP/1 connection between requests, held by its listener's [`Dormant`] set: its
/// socket, out of tokio, and what its next task needs. Everything else the connection had is
/// freed while it sleeps.
pub struct Asleep {
    tcp: std::net::TcpStream,
    live: Arc<ArcSwap<Live>>,
    info: ConnInfo,
    listen: ListenAddr,
    /// Requests served so far (`keepalive_requests`, `$connection_requests`).
    requests: u64,
    /// The connection in stub_status's `active` (and so Waiting).
    status: super::status::ConnGuard,
    permit: tokio::sync::OwnedSemaphorePermit,
    done: mpsc::Sender<()>,
}

impl AsRawFd for Asleep {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}

/// A sleeping connection's socket turned readable: it goes on with a new task, registered
/// with this worker's event loop again, and reads its next request.
fn resume(asleep: Asleep, dormant: &Arc<Dormant<Asleep>>, shutdown: &watch::Receiver<bool>) {
    let Asleep {
        tcp,
        live,
        mut info,
        listen,
        requests,
        status,
        permit,
        done,
    } = asleep;
    let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else {
        return; // not registered: closed
    };
    let tcp = ClientTcp::new(tcp);
    info.watch = Some(tcp.watch());
    let limits = H1Limits::from(&default_limits(&live.load(), &listen));
    let state = Arc::new(ConnState {
        live,
        info: Arc::new(info),
        listen,
        requests: AtomicU64::new(requests),
        track: Arc::new(super::status::ConnTrack::new(status)),
    });
    // It may sleep again, and it has served requests.
    let (rest, resumed) = (true, true);
    let serve = Box::pin(super::h1::serve(
        tcp,
        Vec::new(),
        state.clone(),
        shutdown.clone(),
        limits,
        rest,
        resumed,
    ));
    let ending = Ending {
        permit,
        done,
        dormant: Some(dormant.clone()),
    };
    tokio::spawn(async move {
        let resting = serve.await;
        ending.end(state, resting);
    });
}

/// PROXY protocol header and TLS handshake (handshake.rs), bounded by client_header_timeout as
/// nginx's handshake, then the connection's state.
async fn set_up(
    stream: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    local: std::net::SocketAddr,
    addr: ListenAddr,
    live: Arc<ArcSwap<Live>>,
    status: super::status::ConnGuard,
    mut shutdown: watch::Receiver<bool>,
) -> Option<(ClientIo, Arc<ConnState>)> {
    let (io, edge) = {
        let current = live.load_full();
        let timeout = default_limits(&current, &addr).header_timeout;
        tokio::select! {
            e = super::handshake::accept(stream, &addr, &current, timeout) => e?,
            // A graceful stop does not wait for handshakes in progress.
            _ = shutdown.changed() => return None,
        }
    };
    let state = Arc::new(ConnState {
        live,
        info: Arc::new(ConnInfo {
            remote,
            local,
            id: CONNECTION_SERIAL.fetch_add(1, Ordering::Relaxed),
            // HTTP/1 only: an HTTP/2 client's streams end by frames, and h2c (`H2::Auto`) is
            // decided later, so it keeps hyper's own watch.
            watch: if edge.h2 == super::handshake::H2::No {
                io.watch()
            } else {
                None
            },
            handshake: edge,
        }),
        listen: addr,
        requests: AtomicU64::new(0),
        track: Arc::new(super::status::ConnTrack::new(status)),
    });
    Some((io, state))
}

/// Serves a connection whose handshakes are done: HTTP/2 or HTTP/1, by the handshake's choice.
/// Boxed, and built before its first poll, so that the task holds exactly the serving state.
/// With `rest`, a plain HTTP/1 connection that parks ends with its socket given back
/// ([`super::h1::serve`]).
fn serve_connection(
    stream: ClientIo,
    state: Arc<ConnState>,
    shutdown: watch::Receiver<bool>,
    rest: bool,
) -> Pin<Box<dyn Future<Output = Option<super::h1::Resting>> + Send>> {
    let limits = {
        let live = state.live.load();
        default_limits(&live, &state.listen)
    };
    if state.info.handshake.h2 != super::handshake::H2::No {
        let h2 = super::handshake::serve_h2(stream, state, shutdown, limits);
        return Box::pin(async move {
            h2.await;
            None
        });
    }
    let limits = H1Limits::from(&limits);
    let stream = if own_http1() {
        match stream.into_plain() {
            Ok((tcp, read)) => {
                let resumed = false;
                return Box::pin(super::h1::serve(
                    tcp, read, state, shutdown, limits, rest, resumed,
                ));
            }
            Err(tls) => tls,
        }
    } else {
        stream
    };
    let mut guard = super::guard::Guard::new(stream, limits.large_header_buffers)
        .header_timeout(limits.header_timeout);
    if limits.keepalive_timeout.is_some() {
        guard = guard.parking(state.track.clone());
    }
    let h1 = serve_h1(guard, state, shutdown, limits);
    Box::pin(async move {
        h1.await;
        None
    })
}

/// Plain HTTP/1 connections are served by nginx-rs's own HTTP/1 server (`super::h1`) unless
/// `NGINX_RS_H1=hyper` is set, which puts them on hyper behind the head guard as TLS
/// connections are (for comparisons; read once).
fn own_http1() -> bool {
    static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| std::env::var_os("NGINX_RS_H1").map_or(true, |v| v != "hyper"))
}

/// One hyper connection per run of requests: when the client goes quiet between two requests
/// the guard parks hyper's connection (`Guard::parking`), and the stream waits here, holding no
/// HTTP state, for the next request's first bytes.
///
/// An `async move` block rather than an `async fn`: an async fn's future keeps its arguments
/// twice (as passed and as moved into its body), and this future is what every idle keepalive
/// connection holds.
#[allow(clippy::manual_async_fn)]
fn serve_h1(
    mut guard: super::guard::Guard<ClientIo>,
    state: Arc<ConnState>,
    mut shutdown: watch::Receiver<bool>,
    limits: H1Limits,
) -> impl Future<Output = ()> + Send {
    async move {
        loop {
            // Boxed, so that a waiting connection is only as big as the wait below.
            match Box::pin(serve_hyper(guard, &state, &mut shutdown, limits)).await {
                Some(parked) => {
                    super::park::note_parked();
                    guard = parked;
                }
                None => return,
            }
            // nginx: keepalive_timeout while waiting for a next request (counted from here: the
            // connection parks after 10-20 ms without one, see `park`).
            let wait = limits.keepalive_timeout.unwrap_or(limits.header_timeout);
            let io = guard.get_ref();
            let next = tokio::select! {
                r = std::future::poll_fn(|cx| io.poll_read_ready(cx)) => r.is_ok(),
                _ = tokio::time::sleep(wait) => false,
                _ = shutdown.changed() => false,
            };
            if !next {
                return;
            }
        }
    }
}

/// What an HTTP/1 connection keeps between its hyper connections (an idle keepalive connection
/// holds this, the guard and the socket).
#[derive(Clone, Copy)]
pub struct H1Limits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Option<Duration>,
    pub send_timeout: Duration,
    /// `client_header_buffer_size`.
    pub header_buffer: usize,
    pub large_header_buffers: (usize, usize),
}

impl From<&ClientLimits> for H1Limits {
    fn from(l: &ClientLimits) -> Self {
        H1Limits {
            header_timeout: l.header_timeout,
            keepalive_timeout: l.keepalive_timeout,
            send_timeout: l.send_timeout,
            header_buffer: l.header_buffer_size,
            large_header_buffers: l.large_header_buffers,
        }
    }
}

/// Serves requests with one hyper connection until it ends. Gives the guard back when it parked
/// (the client went quiet between two requests); `None` when the connection is over: closed by
/// either side, upgraded (WebSocket), or a graceful stop.
async fn serve_hyper(
    guard: super::guard::Guard<ClientIo>,
    state: &Arc<ConnState>,
    shutdown: &mut watch::Receiver<bool>,
    limits: H1Limits,
) -> Option<super::guard::Guard<ClientIo>> {
    let (num, size) = limits.large_header_buffers;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // The guard times heads (`Guard::header_timeout`): hyper would arm a timer per request.
        .header_read_timeout(None)
        .keep_alive(limits.keepalive_timeout.is_some())
        // With a watch (plain HTTP/1), the proxy notices a client that goes away mid-request
        // (`client_tcp`); hyper's own check costs an 8 KiB buffer per request in flight.
        .half_close(state.info.watch.is_some())
        // Response names with no recorded spelling (nginx-rs's own, and every upstream one
        // since the upstream client is nginx-rs's own) go out as nginx writes its own:
        // `Content-Type`, `Server`.
        .title_case_headers(true)
        // hyper's default `max_headers` (100, on the stack): the guard packs lines past it, so
        // heads of up to `guard::MAX_HEADERS` lines still pass; see `guard::HYPER_HEADERS`.
        .max_buf_size((num * size).max(8192) + size);
    let st = state.clone();
    let service = service_fn(move |req| super::request::handle(req, st.clone()));
    let io = SendTimeout::new(guard, limits.send_timeout);
    let mut conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if *shutdown.borrow() {
        Pin::new(&mut conn).graceful_shutdown();
    }
    let ended = tokio::select! {
        r = &mut conn => r,
        _ = shutdown.changed() => {
            // Graceful: finish the request in flight (if any), close when idle.
            Pin::new(&mut conn).graceful_shutdown();
            (&mut conn).await
        }
    };
    ended.ok()?;
    let hyper::server::conn::http1::Parts { io, read_buf, .. } = conn.into_parts()?;
    let mut guard = io.into_inner().inner;
    if !guard.parked() || *shutdown.borrow() {
        return None;
    }
    // hyper's read buffer (8 KiB at least) goes with this function: a waiting connection does
    // not hold it.
    guard.unpark(&read_buf);
    Some(guard)
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
