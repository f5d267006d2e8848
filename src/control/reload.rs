//! One reload (SIGHUP), written against the small [`Host`] interface the runtime implements.
//!
//! Order, and why:
//! 1. `load` re-reads and compiles the configuration. Failure: `[emerg] MESSAGE in FILE:LINE` goes to
//!    the error log and nothing else happens — the old `Live` keeps serving, unchanged.
//! 2. The listen sets are diffed; only new addresses are bound (all-or-nothing). A bind failure is an
//!    `[emerg] bind() to ... failed (98: ...)` and, again, nothing changes.
//! 3. `build` makes the new `Live` from the Plan (open logs, take over upstream state for unchanged
//!    groups from the old `Live`). Failure: `[emerg]`, freshly bound sockets are closed.
//! 4. The new `Live` is `store`d in the `ArcSwap`: new requests see it; requests in flight keep the
//!    `Arc` of the old one and finish on it.
//! 5. Removed sockets are handed back (the caller's `Drop` stops their accept loops and closes them);
//!    kept sockets were never touched; new ones start accepting.

use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::conf::{ConfError, Level, Origin};
use crate::plan::ListenAddr;
use crate::runtime::log::ErrorLog;

use super::listen::{diff, ListenDiff, ListenerSet};

/// What the serving side provides to a reload.
pub trait Host {
    type Plan;
    type Live;
    type Listener;

    /// Reads and compiles the configuration again (`plan::compile` on the files).
    fn load(&mut self) -> Result<Self::Plan, ConfError>;
    /// Every address the Plan listens on, in order.
    fn listen_addrs(&self, plan: &Self::Plan) -> Vec<ListenAddr>;
    /// Binds one new address (with the Plan's `listen` options).
    fn bind(&mut self, addr: &ListenAddr, plan: &Self::Plan) -> io::Result<Self::Listener>;
    /// Builds the live state for `plan`, carrying over what `old` has for unchanged upstream groups.
    fn build(&mut self, plan: Self::Plan, old: &Self::Live) -> Result<Self::Live, ConfError>;
    /// Starts accepting on a freshly bound socket now in the set.
    fn start(&mut self, addr: &ListenAddr, listener: &Self::Listener);
}

/// What a reload did.
#[derive(Debug)]
pub enum Outcome<L> {
    /// Swapped. `removed` are the sockets no longer configured: drop them to close.
    Reloaded {
        diff: ListenDiff,
        removed: Vec<(ListenAddr, L)>,
    },
    /// Kept the old configuration; the `[emerg]` text was logged.
    Failed(String),
}

/// `MESSAGE in FILE:LINE`: a [`ConfError`] as the error log's message part.
pub fn conf_error_message(e: &ConfError) -> String {
    match &e.origin {
        Origin::At(span) => format!("{} in {}:{}", e.message, span.file, span.line),
        Origin::CommandLine => format!("{} in command line", e.message),
        Origin::Nowhere => e.message.clone(),
    }
}

/// Runs one reload. `log` is the error log of the configuration currently serving.
pub fn reload<H: Host>(
    host: &mut H,
    live: &ArcSwap<H::Live>,
    listeners: &mut ListenerSet<H::Listener>,
    log: &ErrorLog,
) -> Outcome<H::Listener> {
    let fail = |level: Level, msg: String| {
        log.log(level, None, &msg, None);
        Outcome::Failed(msg)
    };
    let plan = match host.load() {
        Ok(p) => p,
        Err(e) => return fail(e.level, conf_error_message(&e)),
    };
    let d = diff(&listeners.addrs(), &host.listen_addrs(&plan));
    let fresh = match listeners.bind_new(&d, |a| host.bind(a, &plan)) {
        Ok(f) => f,
        Err(e) => return fail(Level::Emerg, e.to_string()),
    };
    let old = live.load_full();
    let new = match host.build(plan, &old) {
        Ok(n) => n,
        Err(e) => return fail(e.level, conf_error_message(&e)),
    };
    live.store(Arc::new(new));
    let removed = listeners.commit(&d, fresh);
    for a in &d.add {
        if let Some(l) = listeners.get(a) {
            host.start(a, l);
        }
    }
    Outcome::Reloaded { diff: d, removed }
}
