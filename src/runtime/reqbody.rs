//! Client request bodies: read whole before proxying (`proxy_request_buffering on`, nginx's default)
//! with `client_max_body_size` and `client_body_timeout`, kept in memory up to
//! `client_body_buffer_size` and spilled to an unlinked temp file beyond it. A buffered body can be
//! replayed for every upstream attempt.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{self, Body, BoxError, ClientBody};

/// A fully received request body.
#[derive(Clone, Debug)]
pub enum Buffered {
    Memory(Bytes),
    File { file: Arc<File>, len: u64 },
}

impl Buffered {
    pub fn len(&self) -> u64 {
        match self {
            Buffered::Memory(b) => b.len() as u64,
            Buffered::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh body reading the whole content from the start (one per upstream attempt).
    pub fn body(&self) -> Body {
        match self {
            Buffered::Memory(b) => body::full(b.clone()),
            Buffered::File { file, len } => FileBody {
                file: file.clone(),
                offset: 0,
                len: *len,
            }
            .boxed_unsync(),
        }
    }
}

/// Why reading the client body failed, mapped to nginx's answers.
#[derive(Debug)]
pub enum ReadError {
    /// Over `client_max_body_size`: 413.
    TooLarge,
    /// `client_body_timeout`: 408.
    Timeout,
    /// Bad chunked framing or the client went away: 400 (nginx logs and closes).
    Client(BoxError),
    /// Temp file trouble: 500.
    Io(std::io::Error),
}

/// Read the whole body. `max` 0 = unlimited.
pub async fn read_all(
    mut incoming: ClientBody,
    max: u64,
    mem_limit: usize,
    timeout: Duration,
) -> Result<Buffered, ReadError> {
    let mut mem = BytesMut::new();
    let mut file: Option<(File, u64)> = None;
    let mut total: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(timeout, incoming.frame()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ReadError::Client(e)),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers are dropped, as nginx does
        };
        total += data.len() as u64;
        if max != 0 && total > max {
            return Err(ReadError::TooLarge);
        }
        match &mut file {
            Some((f, len)) => {
                f.write_all(&data).map_err(ReadError::Io)?;
                *len += data.len() as u64;
            }
            None if mem.len() + data.len() > mem_limit => {
                let mut f = tempfile::tempfile().map_err(ReadError::Io)?;
                f.write_all(&mem).map_err(ReadError::Io)?;
                f.write_all(&data).map_err(ReadError::Io)?;
                let len = (mem.len() + data.len()) as u64;
                mem.clear();
                file = Some((f, len));
            }
            None => mem.extend_from_slice(&data),
        }
    }
    Ok(match file {
        Some((f, len)) => Buffered::File {
            file: Arc::new(f),
            len,
        },
        None => Buffered::Memory(mem.freeze()),
    })
}

/// Streams a spilled body back from its temp file with positional reads (no shared offset, so several
/// attempts can each have their own reader). Reads hit the page cache; like nginx without aio, they
/// are plain blocking reads of at most 64 KiB.
struct FileBody {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.offset >= self.len {
            return Poll::Ready(None);
        }
        let want = (self.len - self.offset).min(64 * 1024) as usize;
        let mut buf = vec![0u8; want];
        match self.file.read_at(&mut buf, self.offset) {
            Ok(0) => Poll::Ready(Some(Err("request body temp file truncated".into()))),
            Ok(n) => {
                buf.truncate(n);
                self.offset += n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

/// The client body passed through as it arrives (`proxy_request_buffering off`), with the size limit
/// and per-read timeout still applied.
pub fn streaming(incoming: ClientBody, max: u64, timeout: Duration) -> Body {
    Limited {
        inner: incoming,
        seen: 0,
        max,
        timeout,
        sleep: None,
    }
    .boxed_unsync()
}

struct Limited {
    inner: ClientBody,
    seen: u64,
    max: u64,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.sleep = None;
                if let Some(d) = f.data_ref() {
                    this.seen += d.len() as u64;
                    if this.max != 0 && this.seen > this.max {
                        return Poll::Ready(Some(Err(
                            "client intended to send too large body".into()
                        )));
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err("client timed out".into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;
