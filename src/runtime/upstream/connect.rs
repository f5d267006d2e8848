//! Opening a connection to a peer: TCP (with `TCP_NODELAY`) or a unix socket, bounded by
//! `proxy_connect_timeout`, with TLS on top for `proxy_pass https://`. The connection carries
//! its own read and write buffers for the HTTP/1 client in `h1`. Errors read as nginx's error
//! log words.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::plan::PeerAddr;

/// The byte stream to a peer: TCP, unix socket, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A connection to a peer, fresh or taken from the keepalive pool.
pub struct UpstreamConn {
    pub(crate) io: Box<dyn Stream>,
    /// Bytes read from the peer and not consumed yet.
    pub(crate) rbuf: BytesMut,
    /// The request head being written; kept to reuse its capacity.
    pub(crate) wbuf: Vec<u8>,
    /// The upstream answered before the whole request went out: not reusable.
    pub(crate) incomplete: bool,
    /// Taken from the keepalive pool (a failure before any response byte deserves one retry on
    /// a fresh connection).
    pub reused: bool,
    pub(crate) addr: PeerAddr,
    pub(crate) created: Instant,
    /// Requests sent (or being sent) on this connection, this one included.
    pub(crate) requests: u64,
}

impl UpstreamConn {
    pub fn peer_addr(&self) -> &PeerAddr {
        &self.addr
    }

    /// Requests carried by this connection so far, the current one included.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The buffer the next request head is written into (see `h1::write`); sending empties it.
    pub fn request_buf(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Nothing of a response has arrived (or all of it was consumed).
    pub fn rbuf_is_empty(&self) -> bool {
        self.rbuf.is_empty()
    }

    /// An idle connection is unusable once the peer closed it, reset it, or sent anything
    /// unasked. Checked without waiting: one read attempt that must find nothing.
    pub(crate) fn is_closed(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        let mut cx = std::task::Context::from_waker(noop_waker());
        // Pending: nothing to read, still open. Ready: EOF, unexpected bytes or an error.
        std::pin::Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_ready()
    }

    /// Hands over the byte stream and what was read past the response head (an upgraded
    /// connection: WebSocket).
    pub(crate) fn into_upgraded(self) -> (Box<dyn Stream>, BytesMut) {
        (self.io, self.rbuf)
    }
}

impl fmt::Debug for UpstreamConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConn")
            .field("addr", &self.addr)
            .field("reused", &self.reused)
            .field("requests", &self.requests)
            .finish()
    }
}

/// A waker that does nothing, for the one-shot readiness probe of idle connections
/// (`std::task::Waker::noop` needs Rust 1.85; the MSRV is 1.80).
fn noop_waker() -> &'static std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    static WAKER: std::sync::OnceLock<std::task::Waker> = std::sync::OnceLock::new();
    WAKER.get_or_init(|| std::task::Waker::from(std::sync::Arc::new(Noop)))
}

/// Why a connection could not be made. `Display` is nginx's error log text, e.g.
/// `connect() failed (111: Connection refused)` or
/// `upstream timed out (110: Connection timed out)`; nginx appends
/// ` while connecting to upstream`.
#[derive(Debug)]
pub enum ConnectError {
    Refused(io::Error),
    Timeout,
    Other(io::Error),
    /// The TLS handshake with the peer failed (`proxy_pass https://`).
    Tls(String),
}

impl ConnectError {
    /// The message as nginx logs it for this peer: for unix sockets nginx names the path
    /// (`connect() to unix:/run/app.sock failed (2: No such file or directory)`), because their
    /// connect fails synchronously; for TCP the error comes later and reads `connect() failed`.
    pub fn log_message(&self, peer: &PeerAddr) -> String {
        match (self, peer) {
            (ConnectError::Refused(e) | ConnectError::Other(e), PeerAddr::Unix(_)) => {
                format!("connect() to {peer} failed ({})", os_error(e))
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused(e) | ConnectError::Other(e) => {
                write!(f, "connect() failed ({})", os_error(e))
            }
            ConnectError::Timeout => f.write_str("upstream timed out (110: Connection timed out)"),
            ConnectError::Tls(e) => write!(f, "SSL_do_handshake() failed ({e})"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// `111: Connection refused`: errno and strerror, as nginx prints them.
fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            // std formats "Connection refused (os error 111)"; nginx wants just the text.
            let text = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text)
                .to_string();
            format!("{code}: {text}")
        }
        None => e.to_string(),
    }
}

/// TLS towards the peer (`proxy_pass https://`): the rustls client configuration and the name
/// to send as SNI and to verify (`proxy_ssl_name`, default the `proxy_pass` host).
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Opens a new connection to `addr`, with a TLS handshake over the TCP stream when `tls` is given
/// (within the same `proxy_connect_timeout`).
pub(crate) async fn open_with(
    addr: &PeerAddr,
    timeout: Duration,
    tls: Option<&UpstreamTls>,
) -> Result<UpstreamConn, ConnectError> {
    let started = Instant::now();
    let io: Box<dyn Stream> = match addr {
        PeerAddr::Inet(sa) => {
            let stream =
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(sa)).await {
                    Err(_) => return Err(ConnectError::Timeout),
                    Ok(Err(e)) => return Err(classify(e)),
                    Ok(Ok(s)) => s,
                };
            // Small requests and headers must not wait for Nagle.
            stream.set_nodelay(true).map_err(ConnectError::Other)?;
            match tls {
                None => Box::new(stream),
                Some(t) => {
                    let left = timeout.saturating_sub(started.elapsed());
                    let connector = tokio_rustls::TlsConnector::from(t.config.clone());
                    let connecting = connector.connect(t.server_name.clone(), stream);
                    match tokio::time::timeout(left, connecting).await {
                        Err(_) => return Err(ConnectError::Timeout),
                        Ok(Err(e)) => return Err(ConnectError::Tls(e.to_string())),
                        Ok(Ok(s)) => Box::new(s),
                    }
                }
            }
        }
        PeerAddr::Unix(path) => {
            let stream =
                match tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path)).await {
                    Err(_) => return Err(ConnectError::Timeout),
                    Ok(Err(e)) => return Err(classify(e)),
                    Ok(Ok(s)) => s,
                };
            Box::new(stream)
        }
    };
    Ok(UpstreamConn {
        io,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
        incomplete: false,
        reused: false,
        addr: addr.clone(),
        created: Instant::now(),
        requests: 0,
    })
}

fn classify(e: io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused(e),
        io::ErrorKind::TimedOut => ConnectError::Timeout,
        _ => ConnectError::Other(e),
    }
}
