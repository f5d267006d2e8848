//! Response bodies from the upstream: a chunked decoder working in place on the connection's
//! read buffer, and the streamed body handed to the client side, which gives the connection back
//! to the keepalive pool once the body has been read to its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::read::Framing;
use super::READ_CHUNK;
use crate::runtime::body::BoxError;
use crate::runtime::client_tcp::{ClientWatch, Seen};
use crate::runtime::upstream::{Group, UpstreamConn};

/// A chunk-size or trailer line longer than this is not HTTP (nginx: invalid chunked response).
const MAX_LINE: usize = 4096;

/// Where the chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailer,
    Done,
}

/// The upstream's chunked framing is broken.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidChunk;

/// Decodes from the front of `buf`: `Ok(Some(data))` is the next piece of body (a zero-copy
/// slice of the buffer), `Ok(None)` means read more, or the end once the state is `Done`.
pub fn decode(state: &mut Chunked, buf: &mut BytesMut) -> Result<Option<Bytes>, InvalidChunk> {
    loop {
        match state {
            Chunked::Done => return Ok(None),
            Chunked::Size => {
                let Some(line) = take_line(buf)? else {
                    return Ok(None);
                };
                let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                let rest = &line[digits..];
                if digits == 0 || !matches!(rest.first(), None | Some(b';' | b' ' | b'\t')) {
                    return Err(InvalidChunk);
                }
                let mut size: u64 = 0;
                for &b in &line[..digits] {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or(InvalidChunk)?;
                }
                *state = if size == 0 {
                    Chunked::Trailer
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let k = (*left).min(buf.len() as u64) as usize;
                *left -= k as u64;
                if *left == 0 {
                    *state = Chunked::DataEnd;
                }
                return Ok(Some(buf.split_to(k).freeze()));
            }
            Chunked::DataEnd => match buf.first() {
                None => return Ok(None),
                Some(b'\n') => {
                    buf.advance(1);
                    *state = Chunked::Size;
                }
                Some(b'\r') => match buf.get(1) {
                    None => return Ok(None),
                    Some(b'\n') => {
                        buf.advance(2);
                        *state = Chunked::Size;
                    }
                    Some(_) => return Err(InvalidChunk),
                },
                Some(_) => return Err(InvalidChunk),
            },
            Chunked::Trailer => {
                // Trailers are dropped, as nginx does.
                let Some(line) = take_line(buf)? else {
                    return Ok(None);
                };
                if line.is_empty() {
                    *state = Chunked::Done;
                }
            }
        }
    }
}

/// Takes one line (without CR LF) off `buf`, if complete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, InvalidChunk> {
    match memchr::memchr(b'\n', buf) {
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(InvalidChunk),
        None => Ok(None),
    }
}

enum Decode {
    Length(u64),
    Chunked(Chunked),
    Close,
}

/// The upstream response body, streamed with `proxy_read_timeout` between reads. At its end a
/// reusable connection goes back to the group's pool; on any error it is closed.
pub struct ResponseBody {
    conn: Option<UpstreamConn>,
    decode: Decode,
    keepalive: bool,
    /// Where a reusable connection goes at the end; `None`: kept for [`Self::into_reusable`].
    group: Option<Arc<Group>>,
    kept: Option<UpstreamConn>,
    read_timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// While the upstream is silent: the client's end, to stop at once when it goes away.
    client: Option<ClientWatch>,
}

impl ResponseBody {
    /// The body of a response with `framing` (`Upgrade` reads like `Close`); at its end a
    /// reusable connection goes back to `group`'s pool.
    pub fn new(
        conn: UpstreamConn,
        framing: Framing,
        keepalive: bool,
        group: Arc<Group>,
        read_timeout: Duration,
    ) -> Self {
        let mut body = Self::detached(conn, framing, keepalive, read_timeout);
        body.group = Some(group);
        body
    }

    /// Same, keeping a reusable connection for [`Self::into_reusable`] instead.
    pub fn detached(
        conn: UpstreamConn,
        framing: Framing,
        keepalive: bool,
        read_timeout: Duration,
    ) -> Self {
        let decode = match framing {
            Framing::Empty => Decode::Length(0),
            Framing::Length(n) => Decode::Length(n),
            Framing::Chunked => Decode::Chunked(Chunked::Size),
            Framing::Close | Framing::Upgrade => Decode::Close,
        };
        ResponseBody {
            conn: Some(conn),
            decode,
            keepalive,
            group: None,
            kept: None,
            read_timeout,
            sleep: None,
            client: None,
        }
    }

    /// Ends the body with an error (the client connection is closed, the upstream one dropped)
    /// if the client goes away while the upstream has nothing to send.
    pub fn watching(mut self, client: Option<ClientWatch>) -> Self {
        self.client = client;
        self
    }

    /// After the whole body was read: the connection, if it can carry another request.
    pub fn into_reusable(self) -> Option<UpstreamConn> {
        self.kept
    }

    /// The body is complete: keep the connection if it can carry another request.
    fn finish(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let reusable =
                self.keepalive && c.rbuf.is_empty() && !matches!(self.decode, Decode::Close);
            if reusable {
                // The buffer stays with the response's bytes until they are sent; the
                // connection waits for its next response without one (`h1::poll_fill`).
                c.rbuf = BytesMut::new();
                match &self.group {
                    Some(g) => g.release(c),
                    None => self.kept = Some(c),
                }
            }
        }
    }

    fn fail(&mut self, msg: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(msg.into())))
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // What the buffer already holds first.
            match &mut this.decode {
                Decode::Length(left) => {
                    if *left == 0 {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    if !conn.rbuf.is_empty() {
                        let k = (*left).min(conn.rbuf.len() as u64) as usize;
                        *left -= k as u64;
                        let data = conn.rbuf.split_to(k).freeze();
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Decode::Chunked(state) => match decode(state, &mut conn.rbuf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) if *state == Chunked::Done => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(InvalidChunk) => {
                        return this.fail("upstream sent invalid chunked response")
                    }
                },
                Decode::Close => {
                    if !conn.rbuf.is_empty() {
                        let data = conn.rbuf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            // Then read more, in sizeable pieces.
            if conn.rbuf.capacity() - conn.rbuf.len() < READ_CHUNK / 4 {
                conn.rbuf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.rbuf) {
                Poll::Ready(Ok(0)) => {
                    if matches!(this.decode, Decode::Close) {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this
                        .fail("upstream prematurely closed connection while reading upstream");
                }
                Poll::Ready(Ok(_)) => this.sleep = None,
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => {
                    if let Some(w) = &this.client {
                        match w.poll_seen(cx) {
                            Poll::Ready(Seen::Closed) => {
                                return this.fail("client prematurely closed connection")
                            }
                            Poll::Ready(Seen::Data) => this.client = None,
                            Poll::Pending => {}
                        }
                    }
                    let t = this.read_timeout;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                    return match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => this.fail(
                            "upstream timed out (110: Connection timed out) while reading upstream",
                        ),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.decode, Decode::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decode {
            Decode::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes.
    fn run(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), InvalidChunk> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(d) = decode(&mut state, &mut buf)? {
                out.extend_from_slice(&d);
            }
        }
        Ok((out, state == Chunked::Done && buf.is_empty()))
    }

    #[test]
    fn chunked_bodies_decode_at_every_split() {
        let input = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in 1..input.len() {
            assert_eq!(
                run(input, step),
                Ok((b"hello0123456789".to_vec(), true)),
                "step {step}"
            );
        }
        assert_eq!(run(b"3\nabc\n0\n\n", 1), Ok((b"abc".to_vec(), true)));
    }

    #[test]
    fn broken_chunking_is_refused() {
        assert_eq!(run(b"x\r\n", 64), Err(InvalidChunk));
        assert_eq!(run(b"3\r\nabcd\r\n", 64), Err(InvalidChunk));
        assert_eq!(run(b"fffffffffffffffffff\r\n", 64), Err(InvalidChunk));
        assert_eq!(run(&[b'1'; 5000], 64), Err(InvalidChunk));
    }
}
