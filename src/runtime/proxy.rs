//! The proxy handler: builds the upstream request the way `ngx_http_proxy_create_request` does,
//! retries per `proxy_next_upstream`, and streams the response back with nginx's header rules.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::{self, Body, BoxError};
use super::ctx::{RequestCtx, UpstreamTry};
use super::errors;
use super::reqbody::{self, Buffered, ReadError};
use super::router;
use super::upstream::{ConnectError, Group, SelectKey, Tried, UpstreamConn};
use super::Live;
use crate::plan::{self, HttpVersion, Location, ProxyConf, ProxyPass};

/// Client headers nginx never passes on by itself (its default `proxy_set_header` list sets them
/// empty or to its own value): they are only sent when the config sets them.
const NOT_FORWARDED: [HeaderName; 8] = [
    header::HOST,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    HeaderName::from_static("keep-alive"),
    header::EXPECT,
    header::UPGRADE,
];

/// The request body as the proxy holds it.
enum ReqBody {
    None,
    Buffered(Buffered),
    /// Streamed (`proxy_request_buffering off`): can be sent once only.
    Streaming(Option<Body>),
}

impl ReqBody {
    fn take(&mut self) -> Option<Body> {
        match self {
            ReqBody::None => Some(body::empty()),
            ReqBody::Buffered(b) => Some(b.body()),
            ReqBody::Streaming(b) => b.take(),
        }
    }
}

/// Where the request goes: the group and the URI to send.
struct Target {
    group: Arc<Group>,
    upstream: Arc<plan::Upstream>,
    uri: String,
}

/// Outcome of one failed attempt, in nginx's `ft_type` terms.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Error,
    Timeout,
    /// The upstream's response head did not parse (`proxy_next_upstream invalid_header`).
    InvalidHeader,
}

/// Proxy the request. `head` is the client request head (already checked), `incoming` its body.
pub async fn proxy(
    ctx: &mut RequestCtx,
    live: &Live,
    conf: &ProxyConf,
    loc: Option<&Location>,
    head: &http::request::Parts,
    incoming: Option<Incoming>,
) -> Response<Body> {
    let tokens = ctx.server.conf.server_tokens;
    let target = match resolve_target(ctx, live, conf, loc) {
        Ok(t) => t,
        Err(msg) => {
            errors::log_error(ctx, &msg, None);
            return errors::response(502, tokens, false, ctx.method == Method::HEAD);
        }
    };

    let limits = &ctx.server.conf.client;
    let limits = loc.map(|l| &l.conf.client).unwrap_or(limits).clone();
    // An HTTP/2 request body may come without Content-Length: DATA frames until END_STREAM.
    let h2_unsized = head.version == Version::HTTP_2
        && !ctx.headers.contains_key(header::CONTENT_LENGTH)
        && incoming
            .as_ref()
            .is_some_and(|b| !hyper::body::Body::is_end_stream(b));
    let has_body = (ctx.headers.contains_key(header::TRANSFER_ENCODING)
        || ctx.headers.contains_key(header::CONTENT_LENGTH)
        || h2_unsized)
        && conf.pass_request_body;
    // nginx buffers anyway when it must send a length it does not know (chunked to HTTP/1.0).
    let chunked = ctx.headers.contains_key(header::TRANSFER_ENCODING) || h2_unsized;
    let buffer = conf.request_buffering || (chunked && conf.http_version == HttpVersion::Http10);
    // `None`: the body was already discarded (an error_page redirect fetches its page without it).
    let mut req_body = match incoming {
        _ if conf.set_body.is_some() => {
            // `proxy_set_body`: the rendered value replaces the client's body.
            let t = conf
                .set_body
                .as_ref()
                .map(|t| ctx.render(t))
                .unwrap_or_default();
            ReqBody::Buffered(Buffered::Memory(Bytes::from(t)))
        }
        Some(incoming) if has_body && buffer => match reqbody::read_all(
            incoming,
            limits.max_body_size,
            limits.body_buffer_size,
            limits.body_timeout,
        )
        .await
        {
            Ok(b) => ReqBody::Buffered(b),
            Err(e) => return body_error(ctx, e, tokens),
        },
        Some(incoming) if has_body => ReqBody::Streaming(Some(reqbody::streaming(
            incoming,
            limits.max_body_size,
            limits.body_timeout,
        ))),
        _ => ReqBody::None,
    };

    // Built once; an attempt takes it, a retry (rare) renders it again.
    let mut headers = Some(upstream_headers(ctx, conf, &req_body, chunked));
    let version = match conf.http_version {
        HttpVersion::Http10 => Version::HTTP_10,
        HttpVersion::Http11 => Version::HTTP_11,
    };

    let idempotent = !matches!(head.method.as_str(), "POST" | "LOCK" | "PATCH");
    let deadline = conf.next_upstream_timeout.map(|t| Instant::now() + t);
    // nginx: the group's `peer.tries`, capped by `proxy_next_upstream_tries` (0 = no cap).
    let group_tries = target.group.tries().max(1);
    let max_tries = if conf.next_upstream_tries == 0 {
        group_tries
    } else {
        conf.next_upstream_tries.min(group_tries)
    };
    let key_buf;
    let key = match &target.upstream.method {
        plan::Balance::IpHash => SelectKey::Ip(ctx.conn.remote.ip()),
        plan::Balance::Hash { key, .. } => {
            key_buf = ctx.render(key);
            SelectKey::Bytes(&key_buf)
        }
        _ => SelectKey::None,
    };
    let upstream_tls = match super::tls::upstream_tls(ctx, live, conf) {
        Ok(t) => t,
        Err(msg) => {
            errors::log_error(ctx, &msg, None);
            return errors::response(502, tokens, false, ctx.method == Method::HEAD);
        }
    };
    let mut tried = Tried::new();
    let mut attempts = 0u32;
    let mut last_failure: Option<Failure> = None;
    loop {
        let peer = match target.group.select(key, &mut tried) {
            Ok(p) => p,
            Err(_) => {
                if attempts == 0 {
                    errors::log_error(ctx, "no live upstreams while connecting to upstream", None);
                }
                return failure_response(ctx, last_failure, tokens);
            }
        };
        attempts += 1;
        let peer_addr = peer.addr().clone();
        let started = Instant::now();

        // Connect; a pooled connection that turns out dead is replaced by a fresh one, and that does
        // not count as a try (nginx: `u->peer.cached` errors add a try back).
        let outcome: Result<Response<ReleaseOnEnd>, (Failure, String, bool)>;
        let mut sent_body = false;
        loop {
            let conn = match target
                .group
                .connect_with(&peer, conf.connect_timeout, upstream_tls.as_ref())
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    let (f, msg) = connect_message(&e, peer.addr());
                    outcome = Err((f, msg, false));
                    break;
                }
            };
            let reused = conn.reused;
            let Some(body) = req_body.take() else {
                outcome = Err((
                    Failure::Error,
                    "upstream prematurely closed connection while sending request to upstream"
                        .into(),
                    true,
                ));
                break;
            };
            let mut req = Request::new(body);
            *req.method_mut() = match &conf.method {
                // `proxy_method`: rendered per request; an invalid token keeps the client's.
                Some(t) => http::Method::from_bytes(&ctx.render(t)).unwrap_or(head.method.clone()),
                None => head.method.clone(),
            };
            *req.version_mut() = version;
            *req.uri_mut() = match target.uri.parse() {
                Ok(u) => u,
                Err(_) => {
                    outcome = Err((Failure::Error, "invalid URI for upstream".into(), false));
                    break;
                }
            };
            *req.headers_mut() = match headers.take() {
                Some(h) => h,
                None => upstream_headers(ctx, conf, &req_body, chunked),
            };
            // Carries hyper's record of the client's header-name case, so names go up as sent.
            *req.extensions_mut() = head.extensions.clone();
            let result = send(conn, req, conf.read_timeout, &target.group).await;
            match result {
                Ok(resp) => {
                    outcome = Ok(resp);
                    break;
                }
                Err(SendError::Canceled) if reused => continue, // never left us: try a fresh one
                Err(SendError::Failed(e))
                    if reused
                        && matches!(req_body, ReqBody::Buffered(_) | ReqBody::None)
                        && (idempotent || conf.next_upstream.non_idempotent) =>
                {
                    let _ = e;
                    continue;
                }
                Err(SendError::Canceled) => {
                    outcome = Err((
                        Failure::Error,
                        "upstream prematurely closed connection while reading response header from upstream".into(),
                        false,
                    ));
                    break;
                }
                Err(SendError::Failed(e)) => {
                    sent_body = true;
                    let class = if e.is_parse() {
                        Failure::InvalidHeader
                    } else {
                        Failure::Error
                    };
                    outcome = Err((class, read_message(&e), true));
                    break;
                }
                Err(SendError::Timeout) => {
                    sent_body = true;
                    outcome = Err((
                        Failure::Timeout,
                        "upstream timed out (110: Connection timed out) while reading response header from upstream".into(),
                        true,
                    ));
                    break;
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        // Per-peer statistics for `metrics` (runtime::status).
        let stats = super::status::global().peer_at(target.group.name(), &peer_addr);
        stats.record(outcome.is_err(), outcome.is_ok().then(|| started.elapsed()));
        stats.set_up(outcome.is_ok());
        match outcome {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_status = conf.next_upstream.statuses.contains(&status);
                ctx.upstream_tries.push(UpstreamTry {
                    addr: peer_addr,
                    status: Some(status),
                    response_time: elapsed,
                });
                if retry_status
                    && attempts < max_tries
                    && deadline.map_or(true, |d| Instant::now() < d)
                    && (idempotent || conf.next_upstream.non_idempotent)
                    && !matches!(req_body, ReqBody::Streaming(None))
                {
                    peer.failure();
                    continue;
                }
                peer.success();
                if status == 101 {
                    return switch_protocols(ctx, resp, head, tokens, conf.read_timeout);
                }
                return client_response(ctx, resp, conf, tokens);
            }
            Err((failure, msg, request_sent)) => {
                let upstream_url = format!(
                    "{}://{}{}",
                    if upstream_tls.is_some() {
                        "https"
                    } else {
                        "http"
                    },
                    peer_addr,
                    target.uri
                );
                errors::log_error(ctx, &msg, Some(&upstream_url));
                peer.failure();
                let status = if failure == Failure::Timeout {
                    504
                } else {
                    502
                };
                ctx.upstream_tries.push(UpstreamTry {
                    addr: peer_addr,
                    status: Some(status),
                    response_time: elapsed,
                });
                last_failure = Some(failure);
                let allowed = match failure {
                    Failure::Error => conf.next_upstream.error,
                    Failure::Timeout => conf.next_upstream.timeout,
                    Failure::InvalidHeader => conf.next_upstream.invalid_header,
                };
                let non_idempotent_block = (request_sent || sent_body)
                    && !idempotent
                    && !conf.next_upstream.non_idempotent;
                let body_gone = matches!(req_body, ReqBody::Streaming(None));
                if !allowed
                    || non_idempotent_block
                    || body_gone
                    || attempts >= max_tries
                    || deadline.is_some_and(|d| Instant::now() >= d)
                {
                    return failure_response(ctx, last_failure, tokens);
                }
            }
        }
    }
}

enum SendError {
    /// hyper never wrote the request (connection already closed).
    Canceled,
    Failed(hyper::Error),
    Timeout,
}

async fn send(
    mut conn: UpstreamConn,
    req: Request<Body>,
    read_timeout: Duration,
    group: &Arc<Group>,
) -> Result<Response<ReleaseOnEnd>, SendError> {
    if conn.sender.ready().await.is_err() {
        return Err(SendError::Canceled);
    }
    let fut = conn.sender.send_request(req);
    match tokio::time::timeout(read_timeout, fut).await {
        Err(_) => Err(SendError::Timeout),
        Ok(Err(e)) if e.is_canceled() => Err(SendError::Canceled),
        Ok(Err(e)) => Err(SendError::Failed(e)),
        Ok(Ok(resp)) => {
            let group = group.clone();
            Ok(resp.map(move |incoming| ReleaseOnEnd {
                inner: incoming,
                conn: Some(conn),
                group,
                read_timeout,
                sleep: None,
            }))
        }
    }
}

/// `101 Switching Protocols` (WebSocket and other upgrades, when the config passes `Upgrade` and
/// `Connection` up): answer the client, then splice the two upgraded connections together.
fn switch_protocols(
    ctx: &mut RequestCtx,
    mut resp: Response<ReleaseOnEnd>,
    head: &http::request::Parts,
    tokens: plan::ServerTokens,
    idle: std::time::Duration,
) -> Response<Body> {
    let Some(client_up) = head.extensions.get::<hyper::upgrade::OnUpgrade>().cloned() else {
        return failure_response(ctx, Some(Failure::Error), tokens);
    };
    let upstream_up = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(c), Ok(u)) = tokio::join!(client_up, upstream_up) else {
            return;
        };
        let mut c = hyper_util::rt::TokioIo::new(c);
        let mut u = hyper_util::rt::TokioIo::new(u);
        // proxy_read_timeout applies to an idle tunnel, as nginx's.
        let _ = super::handshake::tunnel(&mut c, &mut u, idle).await;
    });
    let (mut parts, _) = resp.into_parts();
    let h = &mut parts.headers;
    h.remove(header::DATE);
    h.insert(header::SERVER, errors::server_header(tokens));
    // nginx's header filter answers a 101 with `Connection: upgrade`; `Upgrade` passes through.
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    ctx.status = 101;
    Response::from_parts(parts, body::empty())
}

/// Turn the upstream response into the client's: drop the headers nginx hides, add `Server`.
fn client_response(
    ctx: &mut RequestCtx,
    resp: Response<ReleaseOnEnd>,
    conf: &ProxyConf,
    tokens: plan::ServerTokens,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let body = body.boxed_unsync();
    let h = &mut parts.headers;
    // Hop-by-hop: hyper frames the client response itself.
    for name in HOP_BY_HOP.iter() {
        h.remove(name);
    }
    // nginx's `ngx_http_proxy_hide_headers`, minus `proxy_pass_header`, plus `proxy_hide_header`.
    for name in HIDDEN.iter() {
        if !conf.pass_headers.contains(name) {
            h.remove(name);
        }
    }
    for name in &conf.hide_headers {
        h.remove(name);
    }
    if !h.contains_key(header::SERVER) {
        h.insert(header::SERVER, errors::server_header(tokens));
    }
    ctx.status = parts.status.as_u16();
    Response::from_parts(parts, body)
}

/// Response headers nginx never passes from the upstream (`proxy_pass_header` can pass them).
/// `HeaderName`s, not strings: a `&str` name is parsed again on every `remove`.
const HIDDEN: [HeaderName; 8] = [
    header::DATE,
    header::SERVER,
    HeaderName::from_static("x-pad"),
    HeaderName::from_static("x-accel-expires"),
    HeaderName::from_static("x-accel-redirect"),
    HeaderName::from_static("x-accel-limit-rate"),
    HeaderName::from_static("x-accel-buffering"),
    HeaderName::from_static("x-accel-charset"),
];

const HOP_BY_HOP: [HeaderName; 4] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn failure_response(
    ctx: &mut RequestCtx,
    last: Option<Failure>,
    tokens: plan::ServerTokens,
) -> Response<Body> {
    let code = if last == Some(Failure::Timeout) {
        504
    } else {
        502
    };
    ctx.status = code;
    errors::response(code, tokens, false, ctx.method == Method::HEAD)
}

fn body_error(ctx: &mut RequestCtx, e: ReadError, tokens: plan::ServerTokens) -> Response<Body> {
    let head = ctx.method == Method::HEAD;
    let (code, msg) = match e {
        ReadError::TooLarge => (413, "client intended to send too large body".to_string()),
        ReadError::Timeout => (
            408,
            "client timed out (110: Connection timed out) while reading client request body"
                .to_string(),
        ),
        ReadError::Client(e) => (400, format!("client sent invalid request body: {e}")),
        ReadError::Io(e) => (
            500,
            format!("writing request body to a temporary file failed: {e}"),
        ),
    };
    errors::log_error(ctx, &msg, None);
    ctx.status = code;
    let mut resp = errors::response(code, tokens, true, head);
    if code == 408 {
        // nginx answers a body timeout by closing the connection, with nothing sent.
        resp.extensions_mut().insert(super::request::CloseSilently);
    }
    resp
}

/// nginx's words for a connect failure and its failure class.
fn connect_message(e: &ConnectError, peer: &plan::PeerAddr) -> (Failure, String) {
    let class = match e {
        ConnectError::Timeout => Failure::Timeout,
        _ => Failure::Error,
    };
    (
        class,
        format!("{} while connecting to upstream", e.log_message(peer)),
    )
}

fn read_message(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        return "upstream prematurely closed connection while reading response header from upstream".into();
    }
    if e.is_parse() {
        // hyper's text names the part that failed; nginx words the status line and headers apart.
        let text = e.to_string();
        if text.contains("version") || text.contains("status") {
            return "upstream sent no valid HTTP/1.0 header while reading response header from upstream".into();
        }
        return "upstream sent invalid header while reading response header from upstream".into();
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>());
    match io {
        Some(io) => format!(
            "recv() failed ({}) while reading response header from upstream",
            os_error(io)
        ),
        None => {
            "upstream prematurely closed connection while reading response header from upstream"
                .into()
        }
    }
}

/// `111: Connection refused`, as nginx prints errno.
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("{code}: {text}")
        }
        None => e.to_string(),
    }
}

/// Work out the group and the URI to send, with nginx's `proxy_pass` URI rules.
fn resolve_target(
    ctx: &mut RequestCtx,
    live: &Live,
    conf: &ProxyConf,
    loc: Option<&Location>,
) -> Result<Target, String> {
    match &conf.pass {
        ProxyPass::Static {
            upstream,
            uri,
            proxy_host,
            proxy_port,
            ..
        } => {
            ctx.proxy_host = proxy_host.clone();
            ctx.proxy_port = *proxy_port;
            let group = live
                .upstreams
                .group(upstream)
                .ok_or_else(|| format!("no upstream group for \"{}\"", upstream.name))?;
            let uri = match uri {
                // With a URI part: the matched location prefix is replaced by it (on the decoded,
                // normalised URI, escaped again), arguments appended.
                Some(part) => {
                    let prefix = loc.map(router::matched_prefix_len).unwrap_or(0);
                    let rest = ctx.uri.get(prefix..).unwrap_or("");
                    let mut s = String::with_capacity(part.len() + rest.len() + ctx.args.len() + 1);
                    s.push_str(part);
                    escape_uri(rest, &mut s);
                    if !ctx.args.is_empty() {
                        s.push('?');
                        s.push_str(&ctx.args);
                    }
                    s
                }
                // Without: the client's URI exactly as sent.
                None => ctx.request_uri.clone(),
            };
            Ok(Target {
                group,
                upstream: upstream.clone(),
                uri,
            })
        }
        ProxyPass::Dynamic(t) => {
            let url = String::from_utf8_lossy(&ctx.render(t)).into_owned();
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| format!("invalid URL prefix in \"{url}\""))?;
            let (hostport, uri) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("invalid port in \"{url}\""))?,
                ),
                _ => (hostport, 80),
            };
            let upstream = live
                .plan
                .http
                .upstreams
                .iter()
                .find(|u| u.name == host)
                .ok_or_else(|| format!("no resolver defined to resolve {host}"))?;
            let group = live
                .upstreams
                .group(upstream)
                .ok_or_else(|| format!("no resolver defined to resolve {host}"))?;
            ctx.proxy_host = hostport.into();
            ctx.proxy_port = port;
            let uri = if uri.is_empty() {
                ctx.request_uri.clone()
            } else if uri.starts_with('?') {
                format!("/{uri}")
            } else {
                uri.to_string()
            };
            Ok(Target {
                group,
                upstream: upstream.clone(),
                uri,
            })
        }
    }
}

/// nginx's `ngx_escape_uri(NGX_ESCAPE_URI)`: escape what cannot appear in a path as is.
fn escape_uri(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        // nginx's `uri` escape table: controls, space, `#`, `%`, `?`, DEL and non-ASCII.
        let keep = b > 0x20 && b < 0x7f && !matches!(b, b'#' | b'%' | b'?');
        if keep {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The upstream header list: configured headers first (empty = not sent), then the request body
/// length, then the client's headers except the ones configured or never forwarded.
fn upstream_headers(
    ctx: &RequestCtx,
    conf: &ProxyConf,
    body: &ReqBody,
    chunked: bool,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(ctx.headers.len() + conf.set_headers.len() + 2);
    let mut buf = Vec::with_capacity(64);
    for (name, t) in conf.set_headers.iter() {
        buf.clear();
        ctx.render_into(t, &mut buf);
        if buf.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&buf) {
            h.append(name.clone(), v);
        }
    }
    let configured = |n: &HeaderName| conf.set_headers.iter().any(|(k, _)| k == n);
    if conf.http_version == HttpVersion::Http10 && !configured(&header::CONNECTION) {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    match body {
        ReqBody::Buffered(b) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
        }
        ReqBody::Streaming(_) => {
            if let Some(cl) = ctx.headers.get(header::CONTENT_LENGTH).filter(|_| !chunked) {
                h.insert(header::CONTENT_LENGTH, cl.clone());
            } else {
                h.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
        }
        ReqBody::None => {}
    }
    if !conf.pass_request_headers {
        return h;
    }
    for (name, value) in ctx.headers.iter() {
        if NOT_FORWARDED.contains(name) || configured(name) {
            continue;
        }
        h.append(name.clone(), value.clone());
    }
    h
}

/// The upstream response body: streamed to the client with `proxy_read_timeout` between reads; at
/// its end the connection goes back to the group's keepalive pool.
struct ReleaseOnEnd {
    inner: Incoming,
    conn: Option<UpstreamConn>,
    group: Arc<Group>,
    read_timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for ReleaseOnEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::future::Future;
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                if let Some(c) = this.conn.take() {
                    this.group.release(c);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(f))) => {
                this.sleep = None;
                if this.inner.is_end_stream() {
                    if let Some(c) = this.conn.take() {
                        this.group.release(c);
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                let t = this.read_timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.conn = None;
                        Poll::Ready(Some(Err(
                            "upstream timed out (110: Connection timed out) while reading upstream"
                                .into(),
                        )))
                    }
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
