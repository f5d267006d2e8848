//! What happens on a client connection before HTTP: the PROXY protocol header
//! (`listen ... proxy_protocol`), the TLS handshake (`listen ... ssl`) with the certificate chosen
//! by SNI, and the choice between HTTP/1.1 and HTTP/2 (ALPN `h2`, or h2c on a plain
//! `listen ... http2` address).
//!
//! [`accept`] turns an accepted TCP stream into a [`ClientIo`] and an [`Edge`] (what was learnt on
//! the way, for `$ssl_*`, `$proxy_protocol_addr`, `$scheme`). `server.rs` hands the result to hyper.
//! The listen options and certificates come from the `Live` current at accept time, so a reload
//! swaps certificates for new handshakes while established connections keep theirs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::client_tcp::{ClientTcp, ClientWatch};
use super::proxy_protocol::{self, ProxyHeader};
use super::tls::TlsInfo;
use super::Live;
use crate::plan::{ListenAddr, ListenOpts};

/// Learnt before the first request; kept in [`super::ctx::ConnInfo`].
#[derive(Clone, Debug, Default)]
pub struct Edge {
    pub tls: Option<Arc<TlsInfo>>,
    pub proxy_protocol: Option<ProxyHeader>,
    /// Serve HTTP/2: ALPN chose `h2`, or a plain `listen ... http2` address (h2c, with HTTP/1.1
    /// still accepted: the connection preface decides).
    pub h2: H2,
}

/// How HTTP/2 is offered on a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum H2 {
    /// HTTP/1.x only.
    #[default]
    No,
    /// ALPN chose `h2`: HTTP/2 only.
    Only,
    /// h2c: HTTP/2 if the client starts with the HTTP/2 preface, else HTTP/1.x.
    Auto,
}

/// The client's byte stream: plain TCP or TLS over TCP, with any bytes read past a PROXY header
/// replayed first.
pub enum ClientIo {
    Plain(Prefixed<ClientTcp>),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed<TcpStream>>>),
}

/// Replays `prefix` before reading from `inner`.
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

super::wrap::forward_async_write!(Prefixed);

impl ClientIo {
    /// Ready when the client sent something (or closed), without reading it. Costs no memory:
    /// the waker goes to the socket's own registration.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (replaying, tcp) = match self {
            ClientIo::Plain(p) => (p.pos < p.prefix.len(), p.inner.get_ref()),
            ClientIo::Tls(t) => {
                let p = t.get_ref().0;
                (p.pos < p.prefix.len(), &p.inner)
            }
        };
        if replaying {
            return Poll::Ready(Ok(()));
        }
        tcp.poll_read_ready(cx)
    }

    /// A plain connection's socket and the bytes already read from it (after a PROXY protocol
    /// header) for nginx-rs's own HTTP/1 server; a TLS connection is given back.
    pub fn into_plain(self) -> Result<(ClientTcp, Vec<u8>), ClientIo> {
        match self {
            ClientIo::Plain(p) => {
                let rest = p.prefix.get(p.pos..).unwrap_or_default().to_vec();
                Ok((p.inner, rest))
            }
            tls => Err(tls),
        }
    }

    /// A watch on the client's end, for plain connections (see `client_tcp`); TLS connections
    /// leave that to hyper, which reads through rustls and so sees a `close_notify` too.
    pub fn watch(&self) -> Option<ClientWatch> {
        match self {
            ClientIo::Plain(p) => Some(p.inner.watch()),
            ClientIo::Tls(_) => None,
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Plain(s) => s.is_write_vectored(),
            ClientIo::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The options of `addr` in `live` (a reload may have changed them).
fn listen_opts(live: &Live, addr: &ListenAddr) -> ListenOpts {
    live.plan
        .http
        .listens
        .iter()
        .find(|g| &g.addr == addr)
        .map(|g| g.opts.clone())
        .unwrap_or_default()
}

/// Read the PROXY header if the address expects one, then do the TLS handshake if it is `ssl`.
/// `None`: the connection is closed (broken PROXY header, failed handshake, timeout); the reason
/// is logged as nginx logs it.
pub async fn accept(
    stream: TcpStream,
    addr: &ListenAddr,
    live: &Live,
    handshake_timeout: Duration,
) -> Option<(ClientIo, Edge)> {
    let opts = listen_opts(live, addr);
    let mut stream = stream;
    let mut edge = Edge::default();
    let mut prefix = Vec::new();
    if opts.proxy_protocol {
        match proxy_protocol::read_header(&mut stream, handshake_timeout).await {
            Ok((h, rest)) => {
                edge.proxy_protocol = Some(h);
                prefix = rest;
            }
            Err(proxy_protocol::ReadError::Broken(b)) => {
                tracing::error!("broken header: \"{}\" while reading PROXY protocol", b.0);
                return None;
            }
            Err(proxy_protocol::ReadError::Io(e)) => {
                tracing::info!("client closed connection while reading PROXY protocol ({e})");
                return None;
            }
        }
    }
    if !opts.ssl {
        if opts.http2 {
            edge.h2 = H2::Auto;
        }
        return Some((
            ClientIo::Plain(Prefixed::new(prefix, ClientTcp::new(stream))),
            edge,
        ));
    }
    let io = Prefixed::new(prefix, stream);
    match tokio::time::timeout(handshake_timeout, handshake(io, addr, live, opts.http2)).await {
        Ok(Ok((tls, info))) => {
            if info.h2 {
                edge.h2 = H2::Only;
            }
            edge.tls = Some(Arc::new(info));
            Some((ClientIo::Tls(Box::new(tls)), edge))
        }
        Ok(Err(e)) => {
            tracing::info!("SSL_do_handshake() failed ({e}) while SSL handshaking");
            None
        }
        Err(_) => {
            tracing::info!("client timed out (110: Connection timed out) while SSL handshaking");
            None
        }
    }
}

/// Read the ClientHello, choose the server by SNI (default server's configuration when the name
/// matches nothing or that server has no certificate), finish the handshake.
async fn handshake(
    io: Prefixed<TcpStream>,
    addr: &ListenAddr,
    live: &Live,
    listen_h2: bool,
) -> io::Result<(
    tokio_rustls::server::TlsStream<Prefixed<TcpStream>>,
    TlsInfo,
)> {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = acceptor.await?;
    let sni = start.client_hello().server_name().map(str::to_owned);
    let listen = live.router.listen_index(addr).unwrap_or(0);
    let default = live.router.select_server(listen, None).server;
    let chosen = match &sni {
        Some(name) => live.router.select_server(listen, Some(name)).server,
        None => default,
    };
    let Some(config) = live.tls.config_for(chosen, default, listen_h2) else {
        return Err(io::Error::other(
            "no \"ssl_certificate\" loaded for this server",
        ));
    };
    let stream = start.into_stream(config).await?;
    let info = TlsInfo::from_connection(stream.get_ref().1);
    Ok((stream, info))
}

/// Copy both ways between the two sides of an upgraded (WebSocket) connection until either side
/// closes, or until nothing moved in either direction for `idle` (nginx's `proxy_read_timeout`
/// applied to tunnels: the timer restarts on every byte).
pub async fn tunnel<A, B>(a: &mut A, b: &mut B, idle: Duration) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ab = vec![0u8; 16 * 1024];
    let mut ba = vec![0u8; 16 * 1024];
    let (mut a_open, mut b_open) = (true, true);
    enum Read {
        A(usize),
        B(usize),
    }
    while a_open || b_open {
        let read = async {
            tokio::select! {
                r = a.read(&mut ab), if a_open => r.map(Read::A),
                r = b.read(&mut ba), if b_open => r.map(Read::B),
            }
        };
        let read = match tokio::time::timeout(idle, read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "upstream timed out (110: Connection timed out)",
                ))
            }
        };
        match read {
            Read::A(0) => {
                a_open = false;
                b.shutdown().await?;
            }
            Read::A(n) => b.write_all(&ab[..n]).await?,
            Read::B(0) => {
                b_open = false;
                a.shutdown().await?;
            }
            Read::B(n) => a.write_all(&ba[..n]).await?,
        }
    }
    Ok(())
}

/// Serve an HTTP/2 connection (ALPN `h2`), or an h2c address where the connection preface
/// decides between HTTP/2 and HTTP/1.x. Requests go through the same handler as HTTP/1.1 ones
/// (`$host` comes from `:authority`); a graceful stop sends GOAWAY and lets open streams finish.
pub(crate) async fn serve_h2(
    io: ClientIo,
    state: Arc<super::server::ConnState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    limits: crate::plan::ClientLimits,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if state.info.handshake.h2 == H2::Only {
        builder = builder.http2_only();
    }
    let (num, size) = limits.large_header_buffers;
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(limits.keepalive_timeout.is_some())
        // Response names with no recorded spelling (nginx-rs's own, and every upstream one
        // since the upstream client is nginx-rs's own) go out as nginx writes its own:
        // `Content-Type`, `Server`.
        .title_case_headers(true)
        // nginx has no header count limit; see `guard::MAX_HEADERS`.
        .max_headers(super::guard::MAX_HEADERS + super::guard::ADDED_HEADERS)
        .max_buf_size((num * size).max(8192) + size);
    builder
        .http2()
        .timer(TokioTimer::new())
        // nginx's http2_max_concurrent_streams default.
        .max_concurrent_streams(128)
        .max_header_list_size((num * size).max(8192) as u32);
    let st = state.clone();
    let service = hyper::service::service_fn(move |req| super::request::handle(req, st.clone()));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
