//! A plain-TCP client connection that the request path can watch while hyper owns it.
//!
//! hyper notices a client that goes away during a request by reading from the connection while
//! the response is pending, and to do so reserves a fresh 8 KiB read buffer per request (the
//! request's header values still hold slices of the old one): ~4 MB more at 512 busy connections.
//! nginx-rs turns that read off (hyper's `half_close`) on plain connections and watches for the
//! client's end itself, the way nginx does (`proxy_ignore_client_abort off`): the proxy waits for
//! its upstream with a [`ClientWatch`], which peeks at the socket only when it turns readable.
//!
//! [`ClientTcp`] owns the socket in an `Arc` so that the watch can poll its readiness; reads and
//! writes are tokio's, including tokio's rule that a short read (or write) means the socket is
//! drained (full), so no extra `recv` that would fail with `EAGAIN` follows each request.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The client's socket; see the module doc.
pub struct ClientTcp(Arc<TcpStream>);

impl ClientTcp {
    pub fn new(tcp: TcpStream) -> ClientTcp {
        ClientTcp(Arc::new(tcp))
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.0
    }

    /// A second handle on the same socket (a request body reads through one while the
    /// connection holds the other). It keeps the socket open.
    pub fn share(&self) -> ClientTcp {
        ClientTcp(Arc::clone(&self.0))
    }

    /// The socket, out of tokio's event loop (for [`super::dormant`]); given back when another
    /// handle still shares it. The inner error: tokio could not deregister it (it is closed).
    pub fn into_std(self) -> Result<io::Result<std::net::TcpStream>, ClientTcp> {
        match Arc::try_unwrap(self.0) {
            Ok(tcp) => Ok(tcp.into_std()),
            Err(shared) => Err(ClientTcp(shared)),
        }
    }

    /// Whether the client has sent something, bytes or its end, even if tokio has not reported
    /// it yet (one non-blocking peek).
    pub fn has_input(&self) -> bool {
        !matches!(peek_byte(&self.0), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// A watch on this connection's end. It does not keep the socket open.
    pub fn watch(&self) -> ClientWatch {
        ClientWatch(Arc::downgrade(&self.0))
    }
}

/// Runs `op` once the socket is ready for `interest`, as tokio's `TcpStream` does: an operation
/// that moved fewer bytes than asked (`short`) or would block clears the readiness it used.
fn poll_io(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    interest: Interest,
    mut op: impl FnMut() -> io::Result<(usize, bool)>,
) -> Poll<io::Result<usize>> {
    loop {
        if interest == Interest::READABLE {
            ready!(tcp.poll_read_ready(cx))?;
        } else {
            ready!(tcp.poll_write_ready(cx))?;
        }
        let mut moved = None;
        // `try_io` clears the readiness when the closure says "would block"; a short transfer
        // says so too, with its count kept aside (the readiness cleared is the one observed
        // before the call, so an event that arrives meanwhile is not lost).
        let r = tcp.try_io(interest, || {
            let (n, short) = op()?;
            if short {
                moved = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(n) = moved {
                    return Poll::Ready(Ok(n));
                }
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for ClientTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let tcp = &*self.0;
        // SAFETY: `recv` only writes initialized bytes into the slice, and exactly `n` of them
        // are then marked initialized and filled.
        let unfilled = unsafe { buf.unfilled_mut() };
        let len = unfilled.len();
        let n = ready!(poll_io(tcp, cx, Interest::READABLE, || {
            let n = SockRef::from(tcp).recv(unfilled)?;
            Ok((n, n > 0 && n < len))
        }))?;
        // SAFETY: see above.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ClientTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let tcp = &*self.0;
        poll_io(tcp, cx, Interest::WRITABLE, || {
            let n = SockRef::from(tcp).send(buf)?;
            Ok((n, n > 0 && n < buf.len()))
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp = &*self.0;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        poll_io(tcp, cx, Interest::WRITABLE, || {
            let n = SockRef::from(tcp).send_vectored(bufs)?;
            Ok((n, n > 0 && n < len))
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

/// Watches a plain client connection for its end while a request waits on its upstream.
#[derive(Clone)]
pub struct ClientWatch(Weak<TcpStream>);

impl std::fmt::Debug for ClientWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientWatch")
    }
}

/// What the watch saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The client closed its side (or the connection broke, or is already gone).
    Closed,
    /// The client sent more bytes (a pipelined request): only reading them could tell more, so
    /// the watch is over, as nginx's is.
    Data,
}

impl ClientWatch {
    /// Ready when the socket turned readable and a peek told why; pending (with the task's waker
    /// on the socket's readiness) until then.
    pub fn poll_seen(&self, cx: &mut Context<'_>) -> Poll<Seen> {
        let Some(tcp) = self.0.upgrade() else {
            return Poll::Ready(Seen::Closed);
        };
        loop {
            match ready!(tcp.poll_read_ready(cx)) {
                Ok(()) => {}
                Err(_) => return Poll::Ready(Seen::Closed),
            }
            match tcp.try_io(Interest::READABLE, || peek_byte(&tcp)) {
                Ok(0) => return Poll::Ready(Seen::Closed),
                Ok(_) => return Poll::Ready(Seen::Data),
                // Readiness was stale and is now cleared: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Poll::Ready(Seen::Closed),
            }
        }
    }
}

/// Peeks at the socket's next byte without waiting: `Ok(0)` at the client's end, `WouldBlock`
/// when nothing has come.
fn peek_byte(tcp: &TcpStream) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::uninit(); 1];
    SockRef::from(tcp).peek(&mut byte)
}

/// Runs `fut` to completion unless the client closes its connection first (`None`; `fut` is
/// dropped, which closes the upstream connection it held, as nginx does).
///
/// A future type rather than an `async fn`: an `async fn` would keep `fut` twice in its state,
/// as its argument and pinned as a local, and `fut` is the whole upstream exchange (~730 bytes
/// held by every request waiting on its upstream).
pub fn unless_closed<F: std::future::Future>(
    watch: Option<&ClientWatch>,
    fut: F,
) -> UnlessClosed<'_, F> {
    UnlessClosed {
        fut,
        watching: watch,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`unless_closed`].
    pub struct UnlessClosed<'a, F> {
        #[pin]
        fut: F,
        // `None` once the client sent more bytes: only reading them could tell more.
        watching: Option<&'a ClientWatch>,
    }
}

impl<F: std::future::Future> std::future::Future for UnlessClosed<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        if let Some(w) = *this.watching {
            match w.poll_seen(cx) {
                Poll::Ready(Seen::Closed) => return Poll::Ready(None),
                Poll::Ready(Seen::Data) => *this.watching = None,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests only: the unwraps below never see config or request input.
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn has_input_sees_bytes_and_the_end_before_tokio_does() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let tcp = ClientTcp::new(TcpStream::from_std(server).unwrap());
        assert!(!tcp.has_input(), "nothing sent yet");
        client.write_all(b"GET").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(tcp.has_input(), "bytes");
        assert!(tcp.has_input(), "a peek leaves them there");
        let mut buf = [std::mem::MaybeUninit::uninit(); 8];
        assert_eq!(SockRef::from(tcp.get_ref()).recv(&mut buf).unwrap(), 3);
        assert!(!tcp.has_input(), "read");
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(tcp.has_input(), "the client's end");
    }
}
