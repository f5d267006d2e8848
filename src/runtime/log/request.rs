//! The runtime's [`RequestCtx`] as a [`VarSource`], and the one call the request path makes when a
//! request finishes: [`log_request`].
//!
//! Values come from `RequestCtx::render` (the runtime's single source of variable values); this
//! adapter adds only nginx's *not found* rule, which decides between `-` and an empty string in
//! `escape=default` formats: a request header or response header that is absent, a missing argument or
//! cookie, an unset `set` variable, `$remote_user` without authentication, and `$upstream_*` when the
//! request never went upstream are not found.

use std::borrow::Cow;

use crate::plan::{Segment, Template, Var};
use crate::runtime::ctx::{arg, cookie, RequestCtx};

use super::{AccessSink, VarSource};

fn not_found(ctx: &RequestCtx, var: &Var) -> bool {
    match var {
        Var::HttpHeader(name) => ctx.headers.get(&**name).is_none(),
        Var::HttpReferer => ctx.headers.get(http::header::REFERER).is_none(),
        Var::HttpUserAgent => ctx.headers.get(http::header::USER_AGENT).is_none(),
        Var::SentHttpHeader(name) => !ctx
            .response_headers
            .as_ref()
            .is_some_and(|h| h.get(&**name).is_some()),
        Var::Arg(name) => arg(&ctx.args, name).is_none(),
        Var::Cookie(name) => cookie(&ctx.headers, name).is_none(),
        Var::Slot(i) => !ctx.slots.get(*i as usize).is_some_and(Option::is_some),
        Var::RemoteUser => true,
        Var::UpstreamAddr
        | Var::UpstreamStatus
        | Var::UpstreamResponseTime
        | Var::UpstreamConnectTime
        | Var::UpstreamHeaderTime
        | Var::UpstreamHttpHeader(_) => ctx.upstream_tries.is_empty(),
        _ => false,
    }
}

impl VarSource for RequestCtx {
    fn var(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
        if not_found(self, var) {
            return None;
        }
        let t = Template {
            segments: vec![Segment::Var(var.clone())],
        };
        Some(Cow::Owned(self.render(&t)))
    }
}

/// Writes one line per sink for a finished request (the location's `access_log` list, opened with
/// [`super::access::open_all`]). Formatting runs here; the disk write happens on the writer thread.
pub fn log_request(sinks: &[AccessSink], ctx: &RequestCtx) {
    for s in sinks {
        s.log(ctx);
    }
}
