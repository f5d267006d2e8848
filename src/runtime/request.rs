//! One client request, from parsed head to response: nginx's request-head checks (what hyper does
//! not already reject), server selection, URI normalisation, location matching, limits, then the
//! proxy handler.
//!
//! What hyper's parser rejects before we see the request, and with which status, is documented in
//! `server.rs`; the checks here cover the rest of nginx's `ngx_http_process_request_header`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Version};
use hyper::body::Incoming;

use super::body::{Body, ClientBody};
use super::ctx::RequestCtx;
use super::errors;
use super::router::{self, validate_host};
use super::server::ConnState;
use super::Live;
use crate::plan::{ClientLimits, ServerTokens};

/// Entry point for hyper's `service_fn` (TLS, HTTP/2, h2c; plain HTTP/1 is `super::h1`).
pub async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnState>,
) -> Result<Response<Body>, CloseSilently> {
    // Counts the request; the connection is Writing until the response body is gone (stub_status).
    let mark = conn.track.begin();
    let mut req = req.map(ClientBody::Hyper);
    let added = super::guard::take_added(req.headers_mut());
    if let Some(code) = added.reject {
        // The head guard replaced a head nginx rejects (see `guard`): answer with its status.
        return Ok(mark.attach(rejected(code, &conn)));
    }
    handle_request(req, added, &conn)
        .await
        .map(|(resp, pending)| mark.attach(super::finish::wrap(resp, pending)))
}

/// nginx's answer to a request head it rejects while reading it (`code`; 494 is its "Request
/// Header Or Cookie Too Large"), which closes the connection.
pub fn rejected(code: u16, conn: &ConnState) -> Response<Body> {
    let live = conn.live.load();
    let tokens = default_tokens(&live, conn);
    tracing::info!(target: "nginx_rs::error_log", "client sent invalid request while reading client request headers, client: {}", conn.info.remote.ip());
    errors::response(code, tokens, true, false)
}

/// One request whose head is read and checked (`added`: what the head as sent had beyond
/// `req`), to its response, which the caller writes; then it reports the bytes sent to the
/// access log through the [`super::finish::Pending`] (when a log is on).
///
/// Not an `async fn`: what comes before the phases' first await runs at the call, so the
/// future holds no more of the request than the phases need. (An `async fn` keeps each
/// argument twice, as passed and as its local, and each value it borrowed until its scope
/// ends; every request in flight holds this state.) Inlined, so that the future is built where
/// the caller awaits it rather than returned and copied there (~2 KB; callgrind: 28,225
/// instructions per request inlined, 29,308 not).
#[inline(always)]
pub fn handle_request(
    req: Request<ClientBody>,
    added: super::guard::Added,
    conn: &Arc<ConnState>,
) -> impl std::future::Future<
    Output = Result<(Response<Body>, Option<super::finish::Pending>), CloseSilently>,
> + Send
       + '_ {
    let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let live = conn.live.load_full();
    let head_only = req.method() == Method::HEAD;
    let client_keepalive = wants_keepalive(&req);
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    // `added.raw`: what hyper's request lost of the head as sent (name case, a `#fragment`).
    let prepared = prepare(req, added.raw, conn, &live, n);
    async move {
        let served = match prepared {
            Ok(Prepared {
                mut ctx,
                head,
                incoming,
                content_length,
            }) => {
                // Rewrite, location, access, content, error_page, header filter: runtime::edge.
                let resp =
                    super::edge::handle(&mut ctx, &live, head, incoming, content_length).await;
                Ok((resp, Some(ctx)))
            }
            Err(reject) => Err(reject),
        };
        let (mut resp, ctx) = match served {
            Ok(r) => r,
            Err((code, msg, tokens, ctx)) => {
                if let Some(ctx) = &ctx {
                    errors::log_error(ctx, msg, None);
                } else {
                    tracing::info!(target: "nginx_rs::error_log", "{msg} while reading client request headers, client: {}", conn.info.remote.ip());
                }
                let mut ctx = ctx;
                if let Some(c) = ctx.as_mut() {
                    c.status = if code == 494 { 400 } else { code };
                }
                (errors::response(code, tokens, true, head_only), ctx)
            }
        };
        if resp.extensions().get::<CloseSilently>().is_some() {
            // nginx closes without an answer (e.g. client_body_timeout); hyper does so on a service error.
            // The request is still logged, with the status it ended in (`return 444`, 408, 499).
            if let (Some(hook), Some(mut ctx)) = (&live.on_done, ctx) {
                ctx.status = resp.status().as_u16();
                hook(&ctx);
            }
            return Err(CloseSilently);
        }
        // Keepalive limits of the location that served the request, as nginx's clcf.
        let limits = match ctx.as_ref().and_then(|c| c.loc_conf.as_ref()) {
            Some(c) => c.client.clone(),
            None => conn.limits_for_keepalive(&live),
        };
        // nginx always says which it is: `Connection: keep-alive` or `Connection: close`.
        // (HTTP/1 only: HTTP/2 has no connection-specific headers.)
        if http1 && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let close = !client_keepalive
                || limits.keepalive_timeout.is_none()
                || n >= limits.keepalive_requests
                || resp
                    .headers()
                    .get(header::CONNECTION)
                    .is_some_and(|v| v == "close");
            let value = if close { "close" } else { "keep-alive" };
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static(value));
        }
        let pending = match (&live.on_done, ctx) {
            (Some(hook), Some(mut ctx)) => {
                ctx.status = resp.status().as_u16();
                Some(super::finish::Pending::new(ctx, hook.clone()))
            }
            _ => None,
        };
        Ok((resp, pending))
    }
}

/// The connection is to be closed without a response (also a response extension asking for it).
#[derive(Clone, Copy, Debug)]
pub struct CloseSilently;

impl std::fmt::Display for CloseSilently {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed without a response")
    }
}

impl std::error::Error for CloseSilently {}

type Reject = (u16, &'static str, ServerTokens, Option<Box<RequestCtx>>);

/// A request whose server and URI are settled, for the phases (`edge`).
struct Prepared {
    ctx: Box<RequestCtx>,
    head: http::request::Parts,
    incoming: ClientBody,
    content_length: Option<u64>,
}

/// The request's checks, server choice and URI, up to the phases: nginx's reading of the
/// request head. `raw`: what the head guard recorded of the head as sent (passed along, not as
/// a request extension: inserting one costs a map and three allocations per request).
fn prepare(
    req: Request<ClientBody>,
    raw: Option<super::guard::RawHead>,
    conn: &ConnState,
    live: &Live,
    n: u64,
) -> Result<Prepared, Reject> {
    let (mut head, incoming) = req.into_parts();
    let listen = live.router.listen_index(&conn.listen).unwrap_or(0);
    let default_server = live.router.select_server(listen, None).server;
    let default_conf = live
        .plan
        .http
        .servers
        .get(default_server)
        .map(|s| s.conf.clone());
    let tokens0 = default_conf
        .as_ref()
        .map(|c| c.server_tokens)
        .unwrap_or_default();
    let limits0 = default_conf
        .as_ref()
        .map(|c| c.client.clone())
        .unwrap_or_default();
    let bad = |code, msg| -> Reject { (code, msg, tokens0, None) };

    // Request line (nginx: ngx_http_parse_request_line).
    if !head
        .method
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return Err(bad(400, "client sent invalid method"));
    }
    // Length of the request target as sent (no allocation: the parts are slices of the URI).
    let target_len = head.uri.scheme_str().map_or(0, |s| s.len() + 3)
        + head.uri.authority().map_or(0, |a| a.as_str().len())
        + head.uri.path_and_query().map_or(1, |p| p.as_str().len());
    if head.method.as_str().len() + target_len + 10 > limits0.large_header_buffers.1 {
        return Err(bad(414, "client sent too long URI"));
    }
    let (path_and_query, uri_host) = match (head.uri.scheme(), head.uri.path_and_query()) {
        (Some(_), pq) => (
            pq.map(|p| p.as_str()).unwrap_or("/"),
            head.uri.host().map(|h| h.as_bytes().to_vec()),
        ),
        (None, Some(pq)) if pq.as_str().starts_with('/') => (pq.as_str(), None),
        // `*` (OPTIONS *) and authority-form (CONNECT host:port): nginx's parser rejects both.
        _ => return Err(bad(400, "client sent invalid request")),
    };
    let request_uri = if path_and_query.is_empty() {
        "/".to_string()
    } else {
        path_and_query.to_string()
    };

    // Header lines (nginx: ngx_http_read_request_header / process_request_headers).
    check_header_sizes(&head.headers, &limits0).map_err(|m| (494, m, tokens0, None))?;
    drop_invalid_headers(&mut head.headers, &limits0);
    // One pass over the lines for what nginx checks here: each `HeaderMap` lookup hashes and
    // probes (~100 instructions), and there were five.
    let mut hosts = 0;
    let mut host_header = None;
    let mut lengths = 0;
    let mut length = None;
    let mut codings = 0;
    let mut coding = None;
    for (name, value) in head.headers.iter() {
        if name == header::HOST {
            hosts += 1;
            host_header.get_or_insert(value);
        } else if name == header::CONTENT_LENGTH {
            lengths += 1;
            length.get_or_insert(value);
        } else if name == header::TRANSFER_ENCODING {
            codings += 1;
            coding.get_or_insert(value);
        }
    }
    if hosts > 1 {
        return Err(bad(400, "client sent duplicate host header"));
    }
    if lengths > 1 {
        return Err(bad(400, "client sent duplicate header line"));
    }
    let host = match (&uri_host, host_header) {
        (Some(h), _) => Some(
            validate_host(h).map_err(|_| bad(400, "client sent invalid host in request line"))?,
        ),
        (None, Some(h)) => Some(
            validate_host(h.as_bytes()).map_err(|_| bad(400, "client sent invalid host header"))?,
        ),
        (None, None) => None,
    };
    if host.is_none() && head.version == Version::HTTP_11 {
        return Err(bad(
            400,
            "client sent HTTP/1.1 request without \"Host\" header",
        ));
    }
    if let Some(te) = coding {
        if codings > 1 {
            return Err(bad(400, "client sent duplicate header line"));
        }
        if !te.as_bytes().eq_ignore_ascii_case(b"chunked") {
            return Err(bad(501, "client sent unknown \"Transfer-Encoding\""));
        }
    }
    let content_length = match length {
        Some(v) => Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| bad(400, "client sent invalid \"Content-Length\" header"))?,
        ),
        None => None,
    };

    // Server selection by Host.
    let sm = live.router.select_server(listen, host.as_deref());
    let Some(server) = live.plan.http.servers.get(sm.server).cloned() else {
        return Err(bad(500, "no server"));
    };
    let (path_len, args) = match request_uri.split_once('?') {
        Some((p, a)) => (p.len(), a.to_string()),
        None => (request_uri.len(), String::new()),
    };
    let mut ctx = Box::new(RequestCtx {
        conn: conn.info.clone(),
        conn_requests: n,
        start: Instant::now(),
        method: head.method.clone(),
        version: head.version,
        request_uri,
        absolute_target: uri_host.as_ref().map(|_| head.uri.to_string()),
        uri: String::new(),
        args,
        headers: HeaderMap::new(),
        raw_names: None,
        host: String::new(),
        server: server.clone(),
        captures: None,
        slots: vec![None; live.plan.http.slots.len()],
        proxy_host: empty_str(),
        proxy_port: 0,
        upstream_tries: smallvec::SmallVec::new(),
        status: 0,
        body_bytes_sent: 0,
        bytes_sent: 0,
        response_headers: None,
        loc_conf: None,
        edge: Default::default(),
    });
    ctx.host = host.unwrap_or_else(|| ctx.server_name().to_string());
    ctx.set_captures(sm.captures);
    ctx.headers = std::mem::take(&mut head.headers);
    // nginx's `$request_uri` keeps a `#fragment` (`$uri` does not: the path above stops before it).
    if let Some(raw) = raw {
        if let Some(t) = raw.target {
            ctx.request_uri = t;
        }
        ctx.raw_names = raw.names;
    }
    let tokens = server.conf.server_tokens;

    // URI normalisation, then location.
    let path_raw = &ctx.request_uri.as_bytes()[..path_len];
    let uri = match router::normalize_path(path_raw, server.conf.merge_slashes) {
        Ok(u) => u,
        Err(_) => {
            return Err((400, "client sent invalid request", tokens, Some(ctx)));
        }
    };
    ctx.uri = String::from_utf8(uri)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok(Prepared {
        ctx,
        head,
        incoming,
        content_length,
    })
}

/// One shared empty `Arc<str>` (`$proxy_host` before `proxy_pass` sets it): no allocation per request.
fn empty_str() -> Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    Arc::clone(EMPTY.get_or_init(|| Arc::from("")))
}

/// nginx's `large_client_header_buffers`: a header line longer than one buffer is
/// "400 Request Header Or Cookie Too Large".
fn check_header_sizes(h: &HeaderMap, limits: &ClientLimits) -> Result<(), &'static str> {
    let max = limits.large_header_buffers.1;
    for (name, value) in h.iter() {
        if name.as_str().len() + value.len() + 4 > max {
            return Err("client sent too long header line");
        }
    }
    Ok(())
}

/// nginx's `ignore_invalid_headers` / `underscores_in_headers`: header names with characters other
/// than letters, digits and `-` (and `_` when allowed) are dropped, never forwarded.
fn drop_invalid_headers(h: &mut HeaderMap, limits: &ClientLimits) {
    if !limits.ignore_invalid_headers {
        return;
    }
    // A table lookup per byte: every name of every request is checked.
    static NAME_BYTE: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'-';
            b += 1;
        }
        t
    };
    let valid = |name: &str| {
        name.bytes()
            .all(|b| NAME_BYTE[usize::from(b)] || (b == b'_' && limits.underscores_in_headers))
    };
    if h.keys().all(|k| valid(k.as_str())) {
        return;
    }
    let old = std::mem::take(h);
    let mut last = None;
    for (name, value) in old {
        if let Some(n) = name {
            last = Some(n);
        }
        if let Some(n) = &last {
            if valid(n.as_str()) {
                h.append(n.clone(), value);
            }
        }
    }
}

/// nginx's `lingering_timeout`: reading and dropping a body nobody wants stops after this long
/// without data.
pub const LINGERING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// nginx's `lingering_time`: it stops after this long in all.
pub const LINGERING_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Read and drop a request body the client sends anyway (nginx's lingering close after an error
/// answer), within [`LINGERING_TIMEOUT`] and [`LINGERING_TIME`].
async fn discard_body(mut incoming: ClientBody) {
    use http_body_util::BodyExt;
    let deadline = tokio::time::Instant::now() + LINGERING_TIME;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(LINGERING_TIMEOUT, incoming.frame()).await {
            Ok(Some(Ok(_))) => continue,
            _ => return,
        }
    }
}

/// A response body that, once hyper is done with it, discards the request body ([`discard_body`]).
pub(super) struct DiscardAfter {
    pub(super) inner: Body,
    pub(super) incoming: Option<ClientBody>,
}

impl Drop for DiscardAfter {
    fn drop(&mut self) {
        if let Some(incoming) = self.incoming.take() {
            tokio::spawn(discard_body(incoming));
        }
    }
}

impl http_body::Body for DiscardAfter {
    type Data = bytes::Bytes;
    type Error = super::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `server_tokens` of the default server of the connection's address.
fn default_tokens(live: &Live, conn: &ConnState) -> ServerTokens {
    let listen = live.router.listen_index(&conn.listen).unwrap_or(0);
    let s = live.router.select_server(listen, None).server;
    live.plan
        .http
        .servers
        .get(s)
        .map(|s| s.conf.server_tokens)
        .unwrap_or_default()
}

/// Whether the client asked to keep the connection: HTTP/1.1 unless `Connection: close`, HTTP/1.0
/// only with `Connection: keep-alive`.
fn wants_keepalive<B>(req: &Request<B>) -> bool {
    let has = |token: &str| {
        req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    match req.version() {
        Version::HTTP_11 => !has("close"),
        Version::HTTP_10 => has("keep-alive"),
        _ => false,
    }
}
