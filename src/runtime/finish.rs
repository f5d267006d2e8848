//! The end of a request: the response body is wrapped so that, when its last byte has gone out (or
//! the client went away), `$body_bytes_sent`, `$bytes_sent` and `$request_time` are final and
//! [`crate::runtime::Live::on_done`] runs with the request's context (the access log).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{Body, BoxError};
use super::ctx::RequestCtx;
use super::OnRequestDone;

/// Wrap `resp` so `hook` runs once with `ctx` when the response is finished.
pub fn wrap(resp: Response<Body>, mut ctx: Box<RequestCtx>, hook: OnRequestDone) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    // The header block as hyper writes it: status line, headers, blank line (plus `Date`).
    let mut head = 17 + 2 + 37;
    for (k, v) in parts.headers.iter() {
        head += k.as_str().len() + 2 + v.len() + 2;
    }
    ctx.bytes_sent = head as u64;
    let body = Finish {
        inner: body,
        ctx: Some(ctx),
        hook,
    }
    .boxed_unsync();
    Response::from_parts(parts, body)
}

struct Finish {
    inner: Body,
    ctx: Option<Box<RequestCtx>>,
    hook: OnRequestDone,
}

impl Finish {
    fn done(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            (self.hook)(&ctx);
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.done();
    }
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
                if let (Some(d), Some(ctx)) = (f.data_ref(), this.ctx.as_mut()) {
                    ctx.body_bytes_sent += d.len() as u64;
                    ctx.bytes_sent += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.done();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.done(),
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
