//! The end of a request: once its response is sent (or the client went away),
//! `$body_bytes_sent`, `$bytes_sent` and `$request_time` are final and
//! [`crate::runtime::Live::on_done`] runs with the request's context (the access log).
//!
//! nginx-rs's own HTTP/1 server counts what it writes and reports it to the [`Pending`] itself
//! (`$bytes_sent` exact, as nginx's: head and body as written, chunk framing included). For
//! hyper's connections, [`wrap`] puts the `Pending` in a response body wrapper that counts the
//! body's bytes and estimates the head's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{Body, BoxError};
use super::ctx::RequestCtx;
use super::OnRequestDone;

/// A request waiting for its response to be sent, to be logged then (on [`Pending::sent`], or
/// when dropped with what was counted so far).
pub struct Pending {
    ctx: Option<Box<RequestCtx>>,
    hook: OnRequestDone,
}

impl Pending {
    pub fn new(ctx: Box<RequestCtx>, hook: OnRequestDone) -> Pending {
        Pending {
            ctx: Some(ctx),
            hook,
        }
    }

    /// The response went out: `head` bytes of status line and headers, then `body` bytes.
    pub fn sent(mut self, head: u64, body: u64) {
        if let Some(ctx) = self.ctx.as_mut() {
            ctx.bytes_sent = head + body;
            ctx.body_bytes_sent = body;
        }
        self.done();
    }

    fn done(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            (self.hook)(&ctx);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.done();
    }
}

/// Wrap `resp` so its request is logged when the body is finished (hyper's connections).
pub fn wrap(resp: Response<Body>, pending: Option<Pending>) -> Response<Body> {
    let Some(mut pending) = pending else {
        return resp;
    };
    let (parts, body) = resp.into_parts();
    // The header block as hyper writes it: status line, headers, blank line (plus `Date`).
    let mut head = 17 + 2 + 37;
    for (k, v) in parts.headers.iter() {
        head += k.as_str().len() + 2 + v.len() + 2;
    }
    if let Some(ctx) = pending.ctx.as_mut() {
        ctx.bytes_sent = head as u64;
    }
    let body = Finish {
        inner: body,
        pending,
    }
    .boxed_unsync();
    Response::from_parts(parts, body)
}

struct Finish {
    inner: Body,
    pending: Pending,
}

impl HttpBody for Finish {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(d), Some(ctx)) = (f.data_ref(), this.pending.ctx.as_mut()) {
                    ctx.body_bytes_sent += d.len() as u64;
                    ctx.bytes_sent += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.pending.done();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.pending.done(),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
