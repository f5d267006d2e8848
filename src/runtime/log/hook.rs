//! The access log on the request path: one hook per `Live` (`Live::with_request_done`) that writes a
//! finished request to the `access_log`s of its location.
//!
//! Every location's sinks are opened when the `Live` is built (so a file that cannot be opened fails
//! the start or the reload, with nginx's `open() "..." failed (13: ...)`), and found per request by the
//! address of the request's `LocConf` settings (shared by levels that set nothing) — no lookup by
//! name, no lock.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plan::{LocConf, Location, Plan, RewriteOp};
use crate::runtime::ctx::RequestCtx;
use crate::runtime::OnRequestDone;

use super::access::{open_all, AccessSink};
use super::{LogWriter, OpenError};

type Sinks = HashMap<usize, Vec<AccessSink>>;

/// Levels that share their settings (`LocConf::settings`) share their sinks too.
fn key(c: &Arc<LocConf>) -> usize {
    Arc::as_ptr(&c.settings) as usize
}

fn add(map: &mut Sinks, c: &Arc<LocConf>, w: &Arc<LogWriter>) -> Result<(), OpenError> {
    if let std::collections::hash_map::Entry::Vacant(e) = map.entry(key(c)) {
        e.insert(open_all(&c.access_logs, w)?);
    }
    Ok(())
}

fn add_ops(map: &mut Sinks, ops: &[RewriteOp], w: &Arc<LogWriter>) -> Result<(), OpenError> {
    for op in ops {
        if let RewriteOp::If { ops, conf, .. } = op {
            if let Some(c) = conf {
                add(map, c, w)?;
            }
            add_ops(map, ops, w)?;
        }
    }
    Ok(())
}

fn add_location(map: &mut Sinks, l: &Location, w: &Arc<LogWriter>) -> Result<(), OpenError> {
    add(map, &l.conf, w)?;
    add_ops(map, &l.conf.rewrites, w)?;
    for c in &l.children {
        add_location(map, c, w)?;
    }
    Ok(())
}

/// Opens every access log of `plan` and returns the hook that writes them.
pub fn request_logger(plan: &Plan, writer: &Arc<LogWriter>) -> Result<OnRequestDone, OpenError> {
    let mut map = Sinks::new();
    for s in &plan.http.servers {
        add(&mut map, &s.conf, writer)?;
        add_ops(&mut map, &s.rewrites, writer)?;
        for l in s.locations.iter().chain(&s.named) {
            add_location(&mut map, l, writer)?;
        }
    }
    let writer = Arc::clone(writer);
    Ok(Arc::new(move |ctx: &RequestCtx| {
        // No location chosen (request rejected early): the server's configuration applies.
        let conf = ctx.loc_conf.as_ref().unwrap_or(&ctx.server.conf);
        match map.get(&key(conf)) {
            Some(sinks) => sinks.iter().for_each(|s| s.log(ctx)),
            // A configuration object we did not see at build time: open its logs now (cached by path).
            None => {
                if let Ok(sinks) = open_all(&conf.access_logs, &writer) {
                    sinks.iter().for_each(|s| s.log(ctx));
                }
            }
        }
    }))
}
