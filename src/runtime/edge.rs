//! The request phases around the content handler, in nginx's order: post-read (realip), server
//! rewrite, find location (internal, auto-redirect, body size), location rewrite (`last` or a
//! changed URI searches again; 10 changes at most, then 500), preaccess (realip with the
//! location's settings), access (`allow`/`deny`), content (`return` or `proxy_pass`), then
//! `error_page` (once per request, like nginx without `recursive_error_pages`) and the header
//! filter (`add_header`, absolute `Location`).
//!
//! [`handle`] is the one call `request.rs` makes once the server is chosen and `$uri` normalised.

use std::sync::Arc;

use http::{Method, Response};

use super::access::{self, Client};
use super::body::{Body, ClientBody};
use super::ctx::{ConnInfo, RequestCtx};
use super::errors;
use super::proxy;
use super::realip;
use super::redirect;
use super::respond::{self, Reply};
use super::rewrite::{self, Effects, Flow};
use super::router;
use super::status;
use super::Live;
use crate::plan::{LocConf, Location, RealIp};

/// nginx's `NGX_HTTP_MAX_URI_CHANGES` + 1: ten URI changes are allowed, the eleventh is a 500.
const URI_CHANGES: u32 = 11;

/// Where a (re)started request enters the phases.
enum Entry {
    /// The beginning: server rewrite, then location search (new requests, `error_page /uri`).
    Server,
    /// `error_page ... @name`: straight to that location's rewrite phase.
    Named(Arc<Location>),
}

/// What the phases produced.
enum Outcome {
    Reply(Reply),
    /// A proxied response and the location that proxied it (for `proxy_redirect`).
    Proxied(Response<Body>, Option<Arc<Location>>),
}

/// Per-request bookkeeping across internal redirects.
struct Run<'a> {
    live: &'a Live,
    head: http::request::Parts,
    incoming: Option<ClientBody>,
    content_length: Option<u64>,
    uri_changes: u32,
    realip_done: bool,
}

/// Run the phases for a request whose server is chosen and whose `$uri` is normalised.
///
/// The phases before the first await run at the call; the returned future holds only their
/// [`Run`]. (As an `async fn` it would keep the request head twice: as passed, and in `Run`.)
/// Inlined for the reason given at [`super::request::handle_request`].
#[inline(always)]
pub fn handle<'a>(
    ctx: &'a mut RequestCtx,
    live: &'a Live,
    head: http::request::Parts,
    incoming: ClientBody,
    content_length: Option<u64>,
) -> impl std::future::Future<Output = Response<Body>> + Send + 'a {
    ctx.edge.attach(&live.plan);
    let mut run = Run {
        live,
        head,
        incoming: Some(incoming),
        content_length,
        uri_changes: URI_CHANGES,
        realip_done: false,
    };
    let server_realip = ctx.server.conf.real_ip.clone();
    run.realip(ctx, server_realip.as_deref());
    async move {
        let resp = run_phases(ctx, &mut run).await;
        // nginx answers 413 with `Connection: close`, then reads and drops what the client still
        // sends (lingering close) so the answer is not lost to a reset. The discard starts once
        // the answer is taken: polling the body earlier would send `100 Continue` to an `Expect`
        // client.
        if resp.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            if let Some(incoming) = run.incoming.take() {
                return resp.map(|inner| {
                    http_body_util::BodyExt::boxed_unsync(super::request::DiscardAfter {
                        inner,
                        incoming: Some(incoming),
                    })
                });
            }
        }
        resp
    }
}

/// Every phase, internal redirects by `error_page` included, until a response is final.
async fn run_phases(ctx: &mut RequestCtx, run: &mut Run<'_>) -> Response<Body> {
    let mut entry = Entry::Server;
    // `Some(Some(code))`: an error_page replaced the status; `Some(None)`: `=` keeps the target's.
    let mut status_override: Option<Option<u16>> = None;
    loop {
        let (outcome, conf) = run.phases(ctx, entry).await;
        let candidate = match &outcome {
            // 444 closes at once: no error page for it.
            Outcome::Reply(Reply::Page { code, .. }) => Some(*code).filter(|c| *c != 444),
            Outcome::Reply(Reply::Text { .. }) => None,
            Outcome::Proxied(resp, _) => {
                let status = resp.status().as_u16();
                let ours = resp.extensions().get::<errors::Generated>().is_some();
                let intercept = conf.proxy.as_ref().is_some_and(|p| p.intercept_errors);
                (ours || (intercept && status >= 300)).then_some(status)
            }
        };
        let page = match candidate {
            Some(code) if status_override.is_none() => {
                conf.error_pages.iter().find(|p| p.codes.contains(&code))
            }
            _ => None,
        };
        if let (Some(ep), Some(code)) = (page, candidate) {
            let target = String::from_utf8_lossy(&ctx.render(&ep.target)).into_owned();
            let overwrite = match ep.overwrite {
                None => Some(code),
                Some(o) => o,
            };
            status_override = Some(overwrite);
            if let Some(name) = target.strip_prefix('@') {
                match router::named_location(&ctx.server, &target)
                    .or_else(|| router::named_location(&ctx.server, name))
                {
                    Some(l) => {
                        if run.redirect_budget(ctx, &target) {
                            // A named location keeps the method (a URI gets GET).
                            run.drop_body(ctx);
                            entry = Entry::Named(l);
                            continue;
                        }
                    }
                    None => {
                        errors::log_error(
                            ctx,
                            &format!("could not find named location \"{target}\""),
                            None,
                        );
                    }
                }
                return finish(ctx, &conf, Outcome::Reply(Reply::page(500)), None);
            }
            if target.starts_with('/') {
                if !run.redirect_budget(ctx, &target) {
                    return finish(ctx, &conf, Outcome::Reply(Reply::page(500)), None);
                }
                match target.split_once('?') {
                    Some((p, a)) => {
                        ctx.uri = p.to_string();
                        ctx.args = a.to_string();
                    }
                    None => {
                        ctx.uri = target;
                        ctx.args.clear();
                    }
                }
                ctx.edge.clear_maps();
                run.refetch_with_get(ctx);
                entry = Entry::Server;
                continue;
            }
            // A URL: a redirect, 302 unless `=301|302|303|307|308` says otherwise.
            let code = overwrite
                .filter(|c| matches!(c, 301 | 302 | 303 | 307 | 308))
                .unwrap_or(302);
            let reply = Reply::Page {
                code,
                location: Some(target),
                close: false,
            };
            return finish(ctx, &conf, Outcome::Reply(reply), None);
        }
        return finish(ctx, &conf, outcome, status_override.flatten());
    }
}

impl Run<'_> {
    /// Server rewrite (for [`Entry::Server`]), then location search and location rewrite until the
    /// URI settles, then access and content. Returns the outcome and the configuration in force.
    async fn phases(&mut self, ctx: &mut RequestCtx, entry: Entry) -> (Outcome, Arc<LocConf>) {
        let server = ctx.server.clone();
        let mut named = None;
        match entry {
            Entry::Named(l) => named = Some(l),
            Entry::Server => {
                let mut fx = Effects::default();
                match rewrite::run(ctx, &server.rewrites, &mut fx) {
                    Flow::Done { .. } | Flow::Last => {}
                    Flow::Return { code, text } => {
                        return (reply(respond::from_return(code, text)), server.conf.clone())
                    }
                    Flow::Redirect { code, location } => {
                        return (redirect(code, location), server.conf.clone())
                    }
                }
            }
        }
        let (loc, conf) = loop {
            let (loc, mut conf) = match named.take() {
                Some(l) => {
                    let c = l.conf.clone();
                    (Some(l), c)
                }
                None => match self.find_config(ctx) {
                    Ok(found) => found,
                    Err(early) => return *early,
                },
            };
            let mut fx = Effects::default();
            let flow = rewrite::run(ctx, &conf.rewrites, &mut fx);
            if let Some(c) = fx.conf {
                conf = c;
            }
            match flow {
                Flow::Done { uri_changed: false } => break (loc, conf),
                Flow::Done { uri_changed: true } | Flow::Last => {
                    self.uri_changes -= 1;
                    if self.uri_changes == 0 {
                        let msg = format!(
                            "rewrite or internal redirection cycle while processing \"{}\"",
                            ctx.uri
                        );
                        errors::log_error(ctx, &msg, None);
                        return (reply(Reply::page(500)), conf);
                    }
                }
                Flow::Return { code, text } => {
                    return (reply(respond::from_return(code, text)), conf)
                }
                Flow::Redirect { code, location } => return (redirect(code, location), conf),
            }
        };

        // The configuration chosen (location, or an `if` inside it): its error_log applies.
        ctx.loc_conf = Some(conf.clone());
        // Preaccess: the location's realip settings when the server's did not apply.
        self.realip(ctx, conf.real_ip.as_deref());
        if !access::allowed(&conf.access, Client::Ip(ctx.conn.remote.ip())) {
            errors::log_error(ctx, "access forbidden by rule", None);
            return (reply(Reply::page(403)), conf);
        }
        // Content: `stub_status` / `metrics` (GET and HEAD only, as nginx's stub_status), else proxy.
        let page = if conf.stub_status {
            Some(status::Page::Stub)
        } else if conf.metrics {
            Some(status::Page::Metrics)
        } else {
            None
        };
        if let Some(page) = page {
            return match status::response(page, &ctx.method) {
                Some(mut resp) => {
                    resp.headers_mut().insert(
                        http::header::SERVER,
                        errors::server_header(conf.server_tokens),
                    );
                    (Outcome::Proxied(resp, None), conf)
                }
                None => (reply(Reply::page(405)), conf),
            };
        }
        match &conf.proxy {
            Some(p) => {
                let resp = proxy::proxy(
                    ctx,
                    self.live,
                    p,
                    loc.as_deref(),
                    &self.head,
                    self.incoming.take(),
                )
                .await;
                (Outcome::Proxied(resp, loc), conf)
            }
            // Static files are not served by nginx-rs: what nginx answers for a missing file.
            None => (reply(Reply::page(404)), conf),
        }
    }

    /// nginx's find-config phase: the location for `$uri`, `internal`, `auto_redirect`,
    /// `client_max_body_size`.
    #[allow(clippy::type_complexity)]
    fn find_config(
        &mut self,
        ctx: &mut RequestCtx,
    ) -> Result<(Option<Arc<Location>>, Arc<LocConf>), Box<(Outcome, Arc<LocConf>)>> {
        let server = ctx.server.clone();
        let Some(m) = router::find_location(&server, &ctx.uri) else {
            return Ok((None, server.conf.clone()));
        };
        let conf = m.location.conf.clone();
        // From here on the location's error_log applies to this request's error lines.
        ctx.loc_conf = Some(conf.clone());
        ctx.set_captures(m.captures);
        if conf.internal && !ctx.edge.internal {
            return Err(Box::new((reply(Reply::page(404)), conf)));
        }
        if m.redirect_slash {
            let mut location = router::matched_path(&m.location).to_string();
            if !ctx.args.is_empty() {
                location.push('?');
                location.push_str(&ctx.args);
            }
            return Err(Box::new((redirect(301, location), conf)));
        }
        if let Some(len) = self.content_length {
            let max = conf.client.max_body_size;
            if max != 0 && len > max {
                let msg = format!("client intended to send too large body: {len} bytes");
                errors::log_error(ctx, &msg, None);
                let page = Reply::Page {
                    code: 413,
                    location: None,
                    close: true,
                };
                return Err(Box::new((reply(page), conf)));
            }
        }
        Ok((Some(m.location), conf))
    }

    /// Apply `real_ip` once per request (post-read with the server's settings, or preaccess with
    /// the location's).
    fn realip(&mut self, ctx: &mut RequestCtx, conf: Option<&RealIp>) {
        let Some(conf) = conf else { return };
        if self.realip_done {
            return;
        }
        self.realip_done = true;
        let peer = ctx.conn.remote;
        let proxied = ctx.conn.handshake.proxy_protocol.and_then(|h| h.source);
        if let Some(addr) = realip::real_addr(conf, peer, &ctx.headers, proxied) {
            ctx.edge.realip_remote = Some(peer);
            ctx.conn = Arc::new(ConnInfo {
                remote: addr,
                local: ctx.conn.local,
                id: ctx.conn.id,
                handshake: ctx.conn.handshake.clone(),
                watch: ctx.conn.watch.clone(),
            });
            ctx.edge.clear_maps();
        }
    }

    /// Count an internal redirect; `false` (after logging) when the budget is spent.
    fn redirect_budget(&mut self, ctx: &RequestCtx, target: &str) -> bool {
        self.uri_changes = self.uri_changes.saturating_sub(1);
        if self.uri_changes == 0 {
            let msg = format!(
                "rewrite or internal redirection cycle while internally redirecting to \"{target}\""
            );
            errors::log_error(ctx, &msg, None);
            return false;
        }
        true
    }

    /// An error page URI is fetched with GET (HEAD stays HEAD) and without the request body.
    fn refetch_with_get(&mut self, ctx: &mut RequestCtx) {
        if ctx.method != Method::HEAD {
            ctx.method = Method::GET;
            self.head.method = Method::GET;
        }
        self.drop_body(ctx);
    }

    /// The error page request is internal and carries no request body.
    fn drop_body(&mut self, ctx: &mut RequestCtx) {
        ctx.edge.internal = true;
        self.incoming = None;
    }
}

fn reply(r: Reply) -> Outcome {
    Outcome::Reply(r)
}

fn redirect(code: u16, location: String) -> Outcome {
    Outcome::Reply(Reply::Page {
        code,
        location: Some(location),
        close: false,
    })
}

/// The header filter: status override from `error_page`, absolute `Location`, `add_header`.
fn finish(
    ctx: &mut RequestCtx,
    conf: &Arc<LocConf>,
    outcome: Outcome,
    status: Option<u16>,
) -> Response<Body> {
    // The access log of the configuration that answered applies.
    ctx.loc_conf = Some(conf.clone());
    // nginx's header filter makes `Location` absolute only when nginx set it itself: its own
    // redirects, or an upstream's that `proxy_redirect` rewrote.
    let (mut resp, own_location) = match outcome {
        Outcome::Reply(r) => (respond::build(ctx, conf, r), true),
        Outcome::Proxied(mut r, loc) => {
            let rewritten = match &conf.proxy {
                Some(p) => redirect::rewrite(ctx, p, loc.as_deref(), r.headers_mut()),
                None => false,
            };
            (r, rewritten)
        }
    };
    if let Some(code) = status {
        if let Ok(s) = http::StatusCode::from_u16(code) {
            *resp.status_mut() = s;
            resp.extensions_mut().remove::<hyper::ext::ReasonPhrase>();
            errors::set_reason(&mut resp, code);
        }
    }
    if own_location {
        respond::absolutize_location(ctx, conf, &mut resp);
    }
    respond::add_headers(ctx, conf, &mut resp);
    ctx.status = resp.status().as_u16();
    resp
}

/// Helpers for the unit tests of the edge modules: a Plan from config text and a request on it.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Instant;

    use http::{HeaderMap, Method, Version};

    use crate::plan::{CompileOptions, Plan};
    use crate::runtime::ctx::{ConnInfo, RequestCtx};

    /// Compile `http` (the contents of `http {}`); panics with nginx's message on a bad config.
    pub fn plan(http: &str) -> Arc<Plan> {
        let parsed = crate::plan::mini::parse(http, "t.conf");
        match crate::plan::compile(&parsed, &CompileOptions::default()) {
            Ok((p, _)) => Arc::new(p),
            Err(e) => panic!("test config: {e}"),
        }
    }

    /// A GET for `uri?args` on the first server of `plan`, from 127.0.0.1.
    pub fn ctx(plan: &Arc<Plan>, uri: &str, args: &str, headers: HeaderMap) -> RequestCtx {
        let remote: SocketAddr = ([127, 0, 0, 1], 40000).into();
        let local: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let mut c = RequestCtx {
            conn: Arc::new(ConnInfo {
                remote,
                local,
                id: 1,
                handshake: Default::default(),
                watch: None,
            }),
            conn_requests: 1,
            start: Instant::now(),
            method: Method::GET,
            version: Version::HTTP_11,
            request_uri: uri.to_string(),
            absolute_target: None,
            uri: uri.to_string(),
            args: args.to_string(),
            headers,
            raw_names: None,
            host: "example.com".into(),
            server: plan.http.servers[0].clone(),
            captures: None,
            slots: vec![None; plan.http.slots.len()],
            proxy_host: Arc::from(""),
            proxy_port: 0,
            upstream_tries: smallvec::SmallVec::new(),
            status: 0,
            body_bytes_sent: 0,
            bytes_sent: 0,
            response_headers: None,
            loc_conf: None,
            edge: Default::default(),
        };
        c.edge.attach(plan);
        c
    }
}
