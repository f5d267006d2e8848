//! Request bodies on nginx-rs's own HTTP/1 connections: read from the connection's buffer and
//! socket as the request path polls them, length-delimited or chunked, with `100 Continue` sent
//! on the first read when the client asked for it (as nginx sends it when it starts reading).
//!
//! The connection's read buffer moves into the body's [`Shared`] state while the request runs
//! and goes back to the connection afterwards with whatever follows the body (a pipelined next
//! request): both sides run in the connection's task, so the lock is never contended.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWrite;

use crate::runtime::body::BoxError;
use crate::runtime::client_tcp::ClientTcp;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where a body read stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    Chunked(Chunk),
    /// The whole body was read.
    Done,
}

/// Chunked framing, nginx's `ngx_http_parse_chunked` rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// The size line: hex digits, then an extension or the line end.
    Size {
        size: u64,
        digits: bool,
        ext: bool,
    },
    /// A CR ended the size line: LF must follow.
    SizeLf {
        size: u64,
    },
    Data(u64),
    /// The CRLF after a chunk's data (`true` once the CR went by).
    DataEnd(bool),
    /// Trailer lines up to an empty line; `len` = bytes on the current line.
    Trailer {
        len: usize,
    },
}

/// One step of [`Decoder::step`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// More bytes are needed.
    More,
    End,
}

impl Decoder {
    pub fn chunked() -> Decoder {
        Decoder::Chunked(Chunk::Size {
            size: 0,
            digits: false,
            ext: false,
        })
    }

    /// Takes what it can of the body off the front of `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            let c = match self {
                Decoder::Done => return Ok(Step::End),
                Decoder::Length(n) => {
                    let Some(data) = take_up_to(n, buf) else {
                        return Ok(Step::More);
                    };
                    if *n == 0 {
                        *self = Decoder::Done;
                    }
                    return Ok(Step::Data(data));
                }
                Decoder::Chunked(c) => c,
            };
            if let Chunk::Data(n) = c {
                let Some(data) = take_up_to(n, buf) else {
                    return Ok(Step::More);
                };
                if *n == 0 {
                    *c = Chunk::DataEnd(false);
                }
                return Ok(Step::Data(data));
            }
            let Some(&b) = buf.first() else {
                return Ok(Step::More);
            };
            buf.advance(1);
            match c {
                Chunk::Size { size, digits, ext } => match b {
                    b'\n' if *digits => *c = after_size(*size),
                    b'\r' if *digits => *c = Chunk::SizeLf { size: *size },
                    _ if *ext => {}
                    // nginx allows no space between the size and the line end.
                    b';' if *digits => *ext = true,
                    _ => {
                        let d = (b as char).to_digit(16).ok_or("invalid chunk size")?;
                        *size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .filter(|&s| s <= i64::MAX as u64)
                            .ok_or("invalid chunk size")?;
                        *digits = true;
                    }
                },
                Chunk::SizeLf { size } => match b {
                    b'\n' => *c = after_size(*size),
                    _ => return Err("invalid chunk size"),
                },
                Chunk::DataEnd(cr) => match b {
                    b'\r' if !*cr => *cr = true,
                    b'\n' => {
                        *c = Chunk::Size {
                            size: 0,
                            digits: false,
                            ext: false,
                        }
                    }
                    _ => return Err("invalid chunked body"),
                },
                Chunk::Trailer { len } => match b {
                    b'\n' if *len == 0 => {
                        *self = Decoder::Done;
                        return Ok(Step::End);
                    }
                    b'\n' => *len = 0,
                    b'\r' => {}
                    _ => *len += 1,
                },
                Chunk::Data(_) => {}
            }
        }
    }
}

/// Up to `*left` bytes off the front of `buf` (`None` if it is empty), counted off `*left`.
fn take_up_to(left: &mut u64, buf: &mut BytesMut) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let k = (*left).min(buf.len() as u64) as usize;
    *left -= k as u64;
    Some(buf.split_to(k).freeze())
}

fn after_size(size: u64) -> Chunk {
    if size == 0 {
        Chunk::Trailer { len: 0 }
    } else {
        Chunk::Data(size)
    }
}

/// `Expect: 100-continue` handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Nothing to send (not asked, already sent, or the response has started).
    No,
    /// To send before the first read; this much of it went out.
    Continue(usize),
}

/// What the connection and the body of its current request share.
pub struct State {
    /// The connection's read buffer: body bytes, then whatever follows.
    pub buf: BytesMut,
    pub decoder: Decoder,
    pub expect: Expect,
}

/// See the module doc.
pub struct Shared(Mutex<State>);

impl Shared {
    pub fn new(buf: BytesMut, decoder: Decoder, expect: Expect) -> Arc<Shared> {
        Arc::new(Shared(Mutex::new(State {
            buf,
            decoder,
            expect,
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request body read from the client connection (see the module doc).
pub struct RequestBody {
    shared: Arc<Shared>,
    tcp: ClientTcp,
}

impl RequestBody {
    pub fn new(shared: Arc<Shared>, tcp: ClientTcp) -> RequestBody {
        RequestBody { shared, tcp }
    }
}

/// Body reads grow the buffer by this much when it is (nearly) full.
const READ_CHUNK: usize = 16 * 1024;

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut guard = this.shared.lock();
        let st = &mut *guard;
        while let Expect::Continue(sent) = st.expect {
            match Pin::new(&mut this.tcp).poll_write(cx, &CONTINUE[sent..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Err("client closed".into()))),
                Poll::Ready(Ok(n)) if sent + n >= CONTINUE.len() => st.expect = Expect::No,
                Poll::Ready(Ok(n)) => st.expect = Expect::Continue(sent + n),
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
        loop {
            match st.decoder.step(&mut st.buf) {
                Ok(Step::Data(d)) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::More) => {}
                Err(msg) => return Poll::Ready(Some(Err(msg.into()))),
            }
            if st.buf.capacity() - st.buf.len() < 1024 {
                st.buf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.tcp), cx, &mut st.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Some(Err("client prematurely closed connection".into())))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.shared.lock().decoder == Decoder::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.shared.lock().decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            Decoder::Chunked(_) => SizeHint::default(),
        }
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes: the body and how many bytes after it were
    /// left (read or not yet fed), or the error.
    fn decode(mut d: Decoder, input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), String> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        for part in input.chunks(piece.max(1)) {
            buf.extend_from_slice(part);
            fed += part.len();
            loop {
                match d.step(&mut buf).map_err(str::to_string)? {
                    Step::Data(b) => body.extend_from_slice(&b),
                    Step::More => break,
                    Step::End => return Ok((body, buf.len() + input.len() - fed)),
                }
            }
        }
        Err("incomplete".into())
    }

    #[test]
    fn chunked_bodies_decode_at_every_split() {
        let input = b"5;ext=1\r\nhello\r\n1\nX\n0\r\nTrailer: t\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, input.len()] {
            let (body, left) = decode(Decoder::chunked(), input, piece).unwrap();
            assert_eq!(body, b"helloX", "piece {piece}");
            assert_eq!(left, 4, "what follows the body stays: piece {piece}");
        }
    }

    #[test]
    fn bad_chunk_framing_is_an_error() {
        for bad in [&b"x\r\n"[..], b"\r\n", b"5\r\nhelloXX", b"5\rX", b"5 \r\n"] {
            let r = decode(Decoder::chunked(), bad, 1);
            assert!(r.is_err(), "{:?} decoded", String::from_utf8_lossy(bad));
        }
        let huge = b"fffffffffffffffff\r\n";
        assert_eq!(
            decode(Decoder::chunked(), huge, 4),
            Err("invalid chunk size".into())
        );
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let (body, left) = decode(Decoder::Length(5), b"helloGET /", 3).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(left, 5);
    }
}
