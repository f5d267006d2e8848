//! The proxy handler: builds the upstream request the way `ngx_http_proxy_create_request` does
//! (written by the HTTP/1 client in `upstream::h1`), retries per `proxy_next_upstream`, and
//! streams the response back with nginx's header rules.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, Version};
use http_body_util::BodyExt;

use super::body::{self, Body, ClientBody};
use super::ctx::{RequestCtx, UpstreamTry};
use super::errors;
use super::reqbody::{self, Buffered, ReadError};
use super::router;
use super::upstream::h1::{self, write, BodyFraming, Framing};
use super::upstream::{ConnectError, Group, SelectKey, Tried, UpstreamConn};
use super::Live;
use crate::plan::{self, HttpVersion, Location, ProxyConf, ProxyPass};

/// Client headers nginx never passes on by itself (its default `proxy_set_header` list sets them
/// empty or to its own value): they are only sent when the config sets them.
static NOT_FORWARDED: [HeaderName; 8] = [
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

/// A streamed body was already sent by an earlier attempt.
struct Gone;

impl ReqBody {
    /// The body for one attempt (`None`: there is none).
    fn take(&mut self) -> Result<Option<Body>, Gone> {
        match self {
            ReqBody::None => Ok(None),
            ReqBody::Buffered(b) => Ok(Some(b.body())),
            ReqBody::Streaming(b) => b.take().map(Some).ok_or(Gone),
        }
    }

    /// Can be sent again on another attempt.
    fn replayable(&self) -> bool {
        matches!(self, ReqBody::Buffered(_) | ReqBody::None)
    }
}

/// A response head from the upstream and the connection its body comes on.
struct Answer {
    head: h1::Head,
    conn: UpstreamConn,
}

/// Where the request goes: the group and the URI to send.
struct Target {
    group: Arc<Group>,
    upstream: Arc<plan::Upstream>,
    /// The URI to send; `None`: the client's, as sent (`$request_uri`, not copied).
    uri: Option<String>,
}

impl Target {
    fn uri<'a>(&'a self, ctx: &'a RequestCtx) -> &'a str {
        self.uri.as_deref().unwrap_or(&ctx.request_uri)
    }
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
    incoming: Option<ClientBody>,
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

    let method = match &conf.method {
        // `proxy_method`: rendered per request; an invalid token keeps the client's.
        Some(t) => http::Method::from_bytes(&ctx.render(t)).unwrap_or(head.method.clone()),
        None => head.method.clone(),
    };
    // A clone (a reference count) so that `ctx` stays free to borrow mutably.
    let raw_names = ctx.raw_names.clone();
    let raw_names = raw_names.as_ref();

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
        let outcome: Result<Answer, (Failure, String, bool)>;
        loop {
            let mut conn = match target
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
            let Ok(body) = req_body.take() else {
                outcome = Err((
                    Failure::Error,
                    "upstream prematurely closed connection while sending request to upstream"
                        .into(),
                    true,
                ));
                break;
            };
            let framing = write_head(
                &mut conn.wbuf,
                ctx,
                conf,
                method.as_str(),
                target.uri(ctx),
                &req_body,
                chunked,
                raw_names,
            );
            let exchanged = exchange(&mut conn, body, framing, conf, method == Method::HEAD);
            let Some(result) =
                super::client_tcp::unless_closed(ctx.conn.watch.as_ref(), exchanged).await
            else {
                let scheme = if upstream_tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                let url = format!("{scheme}://{peer_addr}{}", target.uri(ctx));
                return client_closed(ctx, tokens, &url);
            };
            match result {
                Ok(head) => {
                    outcome = Ok(Answer { head, conn });
                    break;
                }
                // The keepalive connection was closed by the peer meanwhile: try a fresh one.
                Err(e)
                    if reused
                        && e.stale()
                        && conn.rbuf_is_empty()
                        && req_body.replayable()
                        && (idempotent
                            || conf.next_upstream.non_idempotent
                            || matches!(e, h1::Error::Write(_))) =>
                {
                    continue
                }
                Err(h1::Error::Body(e)) => return client_body_failed(ctx, &e, tokens),
                Err(e) => {
                    outcome = Err(exchange_failure(&e));
                    break;
                }
            }
        }
        // One clock read for both the log's timing and the peer's statistics.
        let took = started.elapsed();
        let elapsed = took.as_secs_f64();
        // Per-peer statistics for `metrics` (runtime::status).
        let stats = peer.stats(target.group.name());
        stats.record(outcome.is_err(), outcome.is_ok().then_some(took));
        stats.set_up(outcome.is_ok());
        match outcome {
            Ok(answer) => {
                let status = answer.head.status.as_u16();
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
                if answer.head.framing == Framing::Upgrade {
                    return switch_protocols(ctx, answer, head, tokens, conf.read_timeout);
                }
                return client_response(ctx, answer, conf, tokens, &target.group);
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
                    target.uri(ctx)
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
                let non_idempotent_block =
                    request_sent && !idempotent && !conf.next_upstream.non_idempotent;
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

/// Sends the request (head in `conn.wbuf`) and reads the response head.
async fn exchange(
    conn: &mut UpstreamConn,
    body: Option<Body>,
    framing: BodyFraming,
    conf: &ProxyConf,
    head_request: bool,
) -> Result<h1::Head, h1::Error> {
    h1::send_request(conn, body, framing, conf.send_timeout).await?;
    h1::read_head(
        conn,
        head_request,
        conf.buffer_size.max(1024),
        conf.read_timeout,
        &|name| hidden(name, conf),
    )
    .await
}

/// nginx's failure class and error log words for a failed exchange (`request_sent`: always,
/// the write had begun).
fn exchange_failure(e: &h1::Error) -> (Failure, String, bool) {
    const HEADER: &str = "while reading response header from upstream";
    let (class, msg) = match e {
        h1::Error::Write(e) => (
            Failure::Error,
            format!(
                "send() failed ({}) while sending request to upstream",
                os_error(e)
            ),
        ),
        h1::Error::WriteTimeout => (
            Failure::Timeout,
            "upstream timed out (110: Connection timed out) while sending request to upstream"
                .into(),
        ),
        h1::Error::Read(e) => (
            Failure::Error,
            format!("recv() failed ({}) {HEADER}", os_error(e)),
        ),
        h1::Error::ReadTimeout => (
            Failure::Timeout,
            format!("upstream timed out (110: Connection timed out) {HEADER}"),
        ),
        h1::Error::Closed { .. } | h1::Error::Body(_) => (
            Failure::Error,
            format!("upstream prematurely closed connection {HEADER}"),
        ),
        h1::Error::Head(h) => (Failure::InvalidHeader, format!("{} {HEADER}", h.message())),
    };
    (class, msg, true)
}

/// The client closed its connection while the request waited on the upstream: nginx's 499 with
/// `proxy_ignore_client_abort off` (its default). The upstream connection was dropped, so closed.
/// nginx names the phase "sending request" until the upstream's first bytes arrive; nginx-rs does
/// not tell the two phases apart here and says the first (a client giving up on a slow upstream).
fn client_closed(
    ctx: &mut RequestCtx,
    tokens: plan::ServerTokens,
    upstream: &str,
) -> Response<Body> {
    errors::log_at(
        ctx,
        crate::conf::Level::Info,
        "epoll_wait() reported that client prematurely closed connection, so upstream \
         connection is closed too while sending request to upstream",
        Some(upstream),
    );
    ctx.status = 499;
    let mut resp = errors::response(499, tokens, true, ctx.method == Method::HEAD);
    resp.extensions_mut().insert(super::request::CloseSilently);
    resp
}

/// A streamed client body (`proxy_request_buffering off`) failed on its way up. `reqbody`'s
/// streaming wrapper words its limits "too large" and "timed out"; anything else is the client
/// going away.
fn client_body_failed(
    ctx: &mut RequestCtx,
    e: &super::body::BoxError,
    tokens: plan::ServerTokens,
) -> Response<Body> {
    let text = e.to_string();
    if text.contains("too large") {
        return body_error(ctx, ReadError::TooLarge, tokens);
    }
    if text.contains("timed out") {
        return body_error(ctx, ReadError::Timeout, tokens);
    }
    errors::log_error(
        ctx,
        "client prematurely closed connection while sending request to upstream",
        None,
    );
    // nginx's 499: nothing reaches a client that is gone.
    ctx.status = 499;
    let mut resp = errors::response(499, tokens, true, ctx.method == Method::HEAD);
    resp.extensions_mut().insert(super::request::CloseSilently);
    resp
}

/// `101 Switching Protocols` (WebSocket and other upgrades, when the config passes `Upgrade` and
/// `Connection` up): answer the client, then splice the client's upgraded connection and the
/// upstream one together.
fn switch_protocols(
    ctx: &mut RequestCtx,
    answer: Answer,
    head: &http::request::Parts,
    tokens: plan::ServerTokens,
    idle: std::time::Duration,
) -> Response<Body> {
    // The client connection as it will be once the 101 is out: from nginx-rs's own HTTP/1
    // server (plain) or from hyper (TLS).
    let own = head
        .extensions
        .get::<super::h1::OnUpgrade>()
        .and_then(|u| u.take());
    let hyper_up = head.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
    if own.is_none() && hyper_up.is_none() {
        return failure_response(ctx, Some(Failure::Error), tokens);
    }
    let Answer { head: up, conn } = answer;
    let (mut upstream, early) = conn.into_upgraded();
    tokio::spawn(async move {
        if let Some(rx) = own {
            if let Ok(mut c) = rx.await {
                let _ = splice(&mut c, &mut upstream, &early, idle).await;
            }
        } else if let Some(Ok(c)) = match hyper_up {
            Some(u) => Some(u.await),
            None => None,
        } {
            let mut c = hyper_util::rt::TokioIo::new(c);
            let _ = splice(&mut c, &mut upstream, &early, idle).await;
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = up.status;
    *resp.headers_mut() = up.headers;
    let h = resp.headers_mut();
    h.remove(header::DATE);
    h.insert(header::SERVER, errors::server_header(tokens));
    // nginx's header filter answers a 101 with `Connection: upgrade`; `Upgrade` passes through.
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    ctx.status = 101;
    resp
}

/// The tunnel after a 101: the bytes the upstream sent right behind its head first, then both
/// ways until either side ends or it idles for `idle` (proxy_read_timeout, as nginx's).
async fn splice<C, U>(
    client: &mut C,
    upstream: &mut U,
    early: &[u8],
    idle: std::time::Duration,
) -> io::Result<()>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    if !early.is_empty() {
        client.write_all(early).await?;
    }
    super::handshake::tunnel(client, upstream, idle).await
}

/// Turn the upstream response into the client's: drop the headers nginx hides, add `Server`;
/// the body streams from the connection, which returns to the pool at its end.
fn client_response(
    ctx: &mut RequestCtx,
    answer: Answer,
    conf: &ProxyConf,
    tokens: plan::ServerTokens,
    group: &Arc<Group>,
) -> Response<Body> {
    let Answer { head: mut up, conn } = answer;
    if up.framing == Framing::Chunked {
        // The length is the decoded body's, which hyper works out again for the client.
        up.headers.remove(header::CONTENT_LENGTH);
    }
    let body = match up.framing {
        Framing::Empty => {
            if up.keepalive {
                group.release(conn);
            }
            body::empty()
        }
        framing => h1::ResponseBody::new(
            conn,
            framing,
            up.keepalive,
            group.clone(),
            conf.read_timeout,
        )
        .watching(ctx.conn.watch.clone())
        .boxed_unsync(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = up.status;
    *resp.version_mut() = up.version;
    *resp.headers_mut() = up.headers;
    if let Some(names) = up.names {
        // The upstream's spelling of the names, for nginx-rs's HTTP/1 writer (`h1::encode`).
        resp.extensions_mut().insert(super::h1::SpelledNames(names));
    }
    if let Some(reason) = up.reason {
        // hyper's server writes it in the status line; an invalid one keeps the standard text.
        if let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason) {
            resp.extensions_mut().insert(r);
        }
    }
    // The hidden and hop-by-hop names were left out as the head was parsed (`exchange`).
    let h = resp.headers_mut();
    if !h.contains_key(header::SERVER) {
        h.insert(header::SERVER, errors::server_header(tokens));
    }
    ctx.status = resp.status().as_u16();
    resp
}

/// The hop-by-hop headers (hyper frames the client response itself) and the ones nginx hides
/// (`ngx_http_proxy_hide_headers`, minus `proxy_pass_header`, plus `proxy_hide_header`): the
/// upstream head parser leaves them out of the response (`h1::read_head`).
///
/// Called for every upstream response header: one match on the name's text (a length switch
/// and a compare) instead of comparing it with a dozen `HeaderName`s.
fn hidden(name: &HeaderName, conf: &ProxyConf) -> bool {
    let hidden = match name.as_str() {
        // Hop by hop.
        "connection" | "keep-alive" | "transfer-encoding" | "upgrade" => return true,
        // Never passed from the upstream unless `proxy_pass_header` names them.
        "date" | "server" | "x-pad" | "x-accel-expires" | "x-accel-redirect"
        | "x-accel-limit-rate" | "x-accel-buffering" | "x-accel-charset" => {
            !conf.pass_headers.contains(name)
        }
        _ => false,
    };
    hidden || (!conf.hide_headers.is_empty() && conf.hide_headers.contains(name))
}

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
                    Some(s)
                }
                // Without: the client's URI exactly as sent.
                None => None,
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
                None
            } else if uri.starts_with('?') {
                Some(format!("/{uri}"))
            } else {
                Some(uri.to_string())
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

/// Writes the upstream request head into `buf` as nginx does: the request line, the configured
/// headers (nginx's defaults folded in; an empty value is not sent) with their names as written,
/// the body's length or chunking, then the client's headers except the ones configured or never
/// forwarded, with their names as the client sent them. Returns how the body goes up.
#[allow(clippy::too_many_arguments)]
fn write_head(
    buf: &mut Vec<u8>,
    ctx: &RequestCtx,
    conf: &ProxyConf,
    method: &str,
    uri: &str,
    body: &ReqBody,
    chunked: bool,
    raw_names: Option<&super::guard::RawNames>,
) -> BodyFraming {
    buf.clear();
    let http10 = conf.http_version == HttpVersion::Http10;
    write::request_line(buf, method, uri, http10);
    for (i, (name, t)) in conf.set_headers.iter().enumerate() {
        let title;
        let spelled = match conf.set_header_names.get(i) {
            Some(n) => n.as_bytes(),
            None => {
                title = title_case(name.as_str());
                title.as_bytes()
            }
        };
        write::rendered_header(buf, spelled, |out| ctx.render_into(t, out));
    }
    let configured = |n: &HeaderName| conf.set_headers.iter().any(|(k, _)| k == n);
    if http10 && !configured(&header::CONNECTION) {
        write::header(buf, b"Connection", b"close");
    }
    let framing = match body {
        ReqBody::Buffered(b) => {
            write::content_length(buf, b.len());
            BodyFraming::Raw
        }
        ReqBody::Streaming(_) => match ctx.headers.get(header::CONTENT_LENGTH) {
            Some(cl) if !chunked => {
                write::header(buf, b"Content-Length", cl.as_bytes());
                BodyFraming::Raw
            }
            _ => {
                write::header(buf, b"Transfer-Encoding", b"chunked");
                BodyFraming::Chunked
            }
        },
        ReqBody::None => BodyFraming::Raw,
    };
    if conf.pass_request_headers {
        // Names compared as `HeaderName`s: a standard one is a small enum, not a string.
        let skip = |name: &HeaderName| {
            NOT_FORWARDED.contains(name) || conf.set_headers.iter().any(|(k, _)| k == name)
        };
        match raw_names {
            // In the order and spelling sent: the n-th line with a name is the n-th value.
            Some(raw) => {
                for (spelled, nth) in write::raw_names(raw.iter()) {
                    // Through the per-thread name cache: a name seen before is a compare, not
                    // a parse. Lines nginx-rs dropped (invalid names) have no value here.
                    let Some(name) = super::upstream::h1::read::header_name(spelled) else {
                        continue;
                    };
                    if skip(&name) {
                        continue;
                    }
                    if let Some(value) = ctx.headers.get_all(&name).iter().nth(nth) {
                        write::header(buf, spelled, value.as_bytes());
                    }
                }
            }
            // All names were lower case (or HTTP/2): the header map's order.
            None => {
                for (name, value) in ctx.headers.iter() {
                    if !skip(name) {
                        write::header(buf, name.as_str().as_bytes(), value.as_bytes());
                    }
                }
            }
        }
    }
    write::end(buf);
    framing
}

/// `x-real-ip` → `X-Real-Ip`: for header lists built without their spelling (tests).
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}
