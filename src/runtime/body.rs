//! The one body type that flows through the proxy, in both directions.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed body: client request bodies going up, upstream response bodies coming down, and
/// nginx-rs's own pages.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes already in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}
