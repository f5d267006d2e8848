//! nginx-rs's own HTTP/1 client for upstream connections. It writes the request head exactly as
//! nginx does (header names as configured or as the client sent them, nginx's order), then the
//! body (buffered with `Content-Length`, or streamed chunked), reads the response head
//! (`read`), and streams the body with its framing decoded (`body`). A connection goes back to
//! the keepalive pool only after a complete response on HTTP/1.1 without `Connection: close`.
//!
//! - [`write`]: the request head into the connection's reused buffer;
//! - [`read`]: the response head and its framing; nginx's words for bad heads;
//! - [`body`]: chunked decoding and the streamed response body.

pub mod body;
pub mod read;
pub mod write;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use body::ResponseBody;
pub use read::{Framing, Head, HeadError};

use super::UpstreamConn;
use crate::runtime::body::{Body, BoxError};

/// Bytes read from the upstream at a time (nginx's `proxy_buffers` are 8 × 4k|8k).
pub(crate) const READ_CHUNK: usize = 32 * 1024;

/// Room made for reading a response head: most heads (and small bodies behind them) fit. A
/// longer head grows the buffer as it arrives, up to `proxy_buffer_size`; bodies are read in
/// [`READ_CHUNK`]s. With `READ_CHUNK` here, peak RSS of the keepalive bench at 64 connections
/// was 1.4 MB higher.
const HEAD_CHUNK: usize = 4 * 1024;

/// Reads what the upstream sent into `conn.rbuf`. A response's first read goes to the stack and
/// the buffer is then allocated to fit what came, so that a connection waiting for its response
/// holds no buffer: at 512 clients hundreds of requests wait on their upstream at once, and a
/// buffer reserved ahead would be 4 KB each (nginx, too, allocates its `proxy_buffer_size`
/// buffer only when the upstream turns readable).
fn poll_fill(conn: &mut UpstreamConn, cx: &mut std::task::Context<'_>) -> Poll<io::Result<usize>> {
    if !conn.rbuf.is_empty() {
        reserve_head(&mut conn.rbuf);
        return tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.rbuf);
    }
    let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); HEAD_CHUNK];
    let mut read = tokio::io::ReadBuf::uninit(&mut stack);
    std::task::ready!(tokio::io::AsyncRead::poll_read(
        Pin::new(&mut conn.io),
        cx,
        &mut read
    ))?;
    let got = read.filled();
    if !got.is_empty() {
        conn.rbuf = BytesMut::from(got);
    }
    Poll::Ready(Ok(got.len()))
}

/// Makes room in `buf` for the next read of a response head.
fn reserve_head(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < HEAD_CHUNK / 4 {
        buf.reserve(HEAD_CHUNK);
    }
}

/// Body data up to this size is copied behind the head and sent with it in one write.
const COALESCE: usize = 16 * 1024;

/// What went wrong in one request/response exchange.
#[derive(Debug)]
pub enum Error {
    Write(io::Error),
    WriteTimeout,
    /// The client's body failed while streaming it up (too large, timed out, broken).
    Body(BoxError),
    Read(io::Error),
    ReadTimeout,
    /// The upstream closed before a complete head; `got_bytes`: some of it had arrived.
    Closed {
        got_bytes: bool,
    },
    Head(HeadError),
}

impl Error {
    /// Nothing came back on the connection (check also that no partial head arrived): on a
    /// reused keepalive connection this is the peer having closed it meanwhile, and deserves
    /// one more try on a fresh one.
    pub fn stale(&self) -> bool {
        matches!(
            self,
            Error::Write(_) | Error::Closed { got_bytes: false } | Error::Read(_)
        )
    }
}

/// How the request body goes up.
pub enum BodyFraming {
    /// Bytes as they come (`Content-Length` is in the head).
    Raw,
    /// `Transfer-Encoding: chunked` (a streamed body of unknown length).
    Chunked,
}

/// Sends the head in `conn.wbuf` and then `body`. Small bodies go in the same write as the head;
/// a streamed body is sent as it arrives. Whenever sending has to wait, the connection is
/// watched for an early answer (a backend refusing an upload): sending then stops, the answer
/// is read as usual, and the connection is not reused (nginx reads the answer while sending).
pub async fn send_request(
    conn: &mut UpstreamConn,
    body: Option<Body>,
    framing: BodyFraming,
    send_timeout: Duration,
) -> Result<(), Error> {
    conn.incomplete = false;
    let mut pending = std::mem::take(&mut conn.wbuf);
    let result = send_inner(conn, &mut pending, body, framing, send_timeout).await;
    pending.clear();
    conn.wbuf = pending;
    match result {
        Ok(Sent::All) => Ok(()),
        Ok(Sent::Answered) => {
            conn.incomplete = true;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// How sending ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    All,
    /// The upstream answered (or closed) before the whole request was out.
    Answered,
}

async fn send_inner(
    conn: &mut UpstreamConn,
    pending: &mut Vec<u8>,
    body: Option<Body>,
    framing: BodyFraming,
    send_timeout: Duration,
) -> Result<Sent, Error> {
    let chunked = matches!(framing, BodyFraming::Chunked);
    if let Some(mut body) = body {
        loop {
            // Poll once without waiting; only when the body has nothing yet does what is
            // pending go out, so a buffered body leaves with its head in one write.
            let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    if write(conn, pending, send_timeout).await? == Sent::Answered {
                        return Ok(Sent::Answered);
                    }
                    let next = poll_fn(|cx| {
                        if let Poll::Ready(f) = Pin::new(&mut body).poll_frame(cx) {
                            return Poll::Ready(Ok(Some(f)));
                        }
                        poll_answer(conn, cx).map(|r| r.map(|()| None))
                    });
                    match next.await? {
                        Some(f) => f,
                        None => return Ok(Sent::Answered),
                    }
                }
            };
            let data = match frame {
                None => break,
                Some(Err(e)) => return Err(Error::Body(e)),
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) if !d.is_empty() => d,
                    _ => continue,
                },
            };
            if chunked {
                write::chunk_size(pending, data.len());
            }
            if pending.len() + data.len() <= COALESCE {
                pending.extend_from_slice(&data);
            } else {
                if write(conn, pending, send_timeout).await? == Sent::Answered
                    || write_watching(conn, &data, send_timeout).await? == Sent::Answered
                {
                    return Ok(Sent::Answered);
                }
            }
            if chunked {
                pending.extend_from_slice(b"\r\n");
            }
        }
        if chunked {
            pending.extend_from_slice(b"0\r\n\r\n");
        }
    }
    if write(conn, pending, send_timeout).await? == Sent::Answered {
        return Ok(Sent::Answered);
    }
    match tokio::time::timeout(send_timeout, conn.io.flush()).await {
        Err(_) => Err(Error::WriteTimeout),
        Ok(Err(e)) => Err(Error::Write(e)),
        Ok(Ok(())) => Ok(Sent::All),
    }
}

/// Writes and empties `pending`.
async fn write(conn: &mut UpstreamConn, pending: &mut Vec<u8>, t: Duration) -> Result<Sent, Error> {
    if pending.is_empty() {
        return Ok(Sent::All);
    }
    let sent = write_watching(conn, pending, t).await?;
    pending.clear();
    Ok(sent)
}

/// Writes all of `data` within `t` of no progress... or stops when the upstream answers first.
/// The read side is only looked at when a write has to wait or fails, so the usual request
/// costs no extra system call.
async fn write_watching(conn: &mut UpstreamConn, data: &[u8], t: Duration) -> Result<Sent, Error> {
    let mut written = 0;
    let fut = poll_fn(|cx| loop {
        if written == data.len() {
            return Poll::Ready(Ok(Sent::All));
        }
        match Pin::new(&mut conn.io).poll_write(cx, &data[written..]) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(Error::Write(io::ErrorKind::WriteZero.into())))
            }
            Poll::Ready(Ok(n)) => written += n,
            // A backend that answered and closed: its answer counts, not the broken pipe.
            Poll::Ready(Err(e)) => {
                return Poll::Ready(match poll_answer(conn, cx) {
                    Poll::Ready(Ok(())) if !conn.rbuf.is_empty() => Ok(Sent::Answered),
                    _ => Err(Error::Write(e)),
                })
            }
            Poll::Pending => return poll_answer(conn, cx).map(|r| r.map(|()| Sent::Answered)),
        }
    });
    match tokio::time::timeout(t, fut).await {
        Err(_) => Err(Error::WriteTimeout),
        Ok(r) => r,
    }
}

/// Ready once the upstream sent something (or closed) while the request is still going out.
fn poll_answer(
    conn: &mut UpstreamConn,
    cx: &mut std::task::Context<'_>,
) -> Poll<Result<(), Error>> {
    match poll_fill(conn, cx) {
        Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
        Poll::Ready(Err(e)) => Poll::Ready(Err(Error::Read(e))),
        Poll::Pending => Poll::Pending,
    }
}

/// Reads the response head (skipping interim 1xx responses other than 101), at most `max`
/// bytes (`proxy_buffer_size`), with `read_timeout` between reads; header names `hide` picks
/// are left out (see [`read::parse_hiding`]).
pub async fn read_head(
    conn: &mut UpstreamConn,
    head_request: bool,
    max: usize,
    read_timeout: Duration,
    hide: &(dyn Fn(&http::HeaderName) -> bool + Sync),
) -> Result<Head, Error> {
    loop {
        if !conn.rbuf.is_empty() {
            match read::parse_hiding(&mut conn.rbuf, head_request, max, hide) {
                Ok(Some(h)) if h.status.is_informational() && h.status.as_u16() != 101 => continue,
                // The request did not all go out: the connection ends with this response.
                Ok(Some(mut h)) => {
                    h.keepalive &= !conn.incomplete;
                    return Ok(h);
                }
                Ok(None) => {}
                Err(e) => return Err(Error::Head(e)),
            }
        }
        match tokio::time::timeout(read_timeout, poll_fn(|cx| poll_fill(conn, cx))).await {
            Err(_) => return Err(Error::ReadTimeout),
            Ok(Err(e)) => return Err(Error::Read(e)),
            Ok(Ok(0)) => {
                return Err(Error::Closed {
                    got_bytes: !conn.rbuf.is_empty(),
                })
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// One exchange with the whole response in memory (for checks and tests, not the proxy path):
/// sends the head already in [`UpstreamConn::request_buf`], no body; returns the response head,
/// its body, and the connection if it can carry another request.
pub async fn round_trip(
    mut conn: UpstreamConn,
    timeout: Duration,
) -> Result<(Head, Bytes, Option<UpstreamConn>), Error> {
    send_request(&mut conn, None, BodyFraming::Raw, timeout).await?;
    let head = read_head(&mut conn, false, 64 * 1024, timeout, &|_| false).await?;
    let mut body = ResponseBody::detached(conn, head.framing, head.keepalive, timeout);
    let mut data = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Read(io::Error::other(e)))?;
        if let Ok(d) = frame.into_data() {
            data.extend_from_slice(&d);
        }
    }
    Ok((head, data.freeze(), body.into_reusable()))
}

#[cfg(test)]
mod tests {
    //! Unit tests only: the unwraps below never see config or request input.
    use super::*;
    use crate::plan::PeerAddr;
    use tokio::io::AsyncReadExt;

    /// A backend that answers each request on one connection; the second answer's head comes in
    /// two pieces.
    async fn backend() -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
                .await
                .unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.write_all(b"ngth: 3\r\n\r\ntwo").await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn a_kept_connection_holds_no_read_buffer_between_responses() {
        let addr = PeerAddr::Inet(backend().await);
        let t = Duration::from_secs(5);
        let mut conn = super::super::connect::open_with(&addr, t, None)
            .await
            .unwrap();
        for want in ["one", "two"] {
            conn.request_buf()
                .extend_from_slice(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
            let (head, body, kept) = round_trip(conn, t).await.unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(&body[..], want.as_bytes());
            conn = kept.expect("kept alive");
            assert_eq!(conn.rbuf.capacity(), 0, "after {want}");
        }
    }
}
