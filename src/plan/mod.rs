//! AST to Plan: nginx's directive table (contexts, arity, value checks) and the compiler that turns a
//! checked AST into the typed `Plan` the runtime executes.
//!
//! Never touches the network except to resolve upstream names at load time (as nginx does), and
//! then only through the injected [`Resolve`]; never needs an async runtime.
//!
//! # Entry points
//! [`compile`]`(&parsed, &opts)` (a tree) and [`compile_file`]`(path, ...)` (the file compiled as
//! it is read, what the CLI uses) return the [`Plan`] and the warnings (`[warn]` lines the CLI
//! prints), or the first `[emerg]` error, in nginx's order:
//! 1. the walk, in file order: for each directive the dispatcher checks that it is known, allowed
//!    in its context, terminated right (`;` vs `{`), has a valid argument count, then runs its
//!    handler (value checks). `-g` directives come first and their errors say `in command line`.
//!    If the parser stopped on a syntax error, that error is reported only if everything before it
//!    checked clean (nginx had already handled those directives when it hit the error);
//! 2. post-parse checks: upstream initialisation (implicit `proxy_pass` hosts resolved), the merge
//!    of http → server → location settings, duplicate locations, TLS certificates, unknown
//!    variables, and (full configurations) `no "events" section in configuration`.
//!
//! # Two entry shapes
//! - A full `nginx.conf`: its top level is nginx's main context (`events`, `http`, `pid`, ...).
//! - A `conf.d` fragment such as the walkthrough's `default.conf`: its top level holds
//!   http-context directives (`upstream`, `server`, `map`, `log_format`, ...) and is read as the
//!   contents of `http { }`, exactly as nginx reads it through `include conf.d/*.conf;`.
//!
//! With [`Shape::Auto`] the rule is: a file whose top level contains any directive that is allowed
//! in the main context but not inside `http` (`events`, `http`, `worker_processes`, `pid`, `user`,
//! `daemon`, ...) is a full configuration; any other file is a fragment.

mod directives;
mod finish;
mod listen;
mod logs;
mod raw;
mod rewrite;
pub mod table;
pub mod template;
pub mod types;
mod upstream;
pub mod values;
pub mod vars;
mod walk;

pub use template::{Segment, Template, Var};
pub use types::*;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::conf::parser::Parsed;
use crate::conf::{ConfError, Directive, Event, Level, Reader};

/// Name resolution for `upstream` servers and `proxy_pass` hosts, injected so that `plan` itself
/// never does I/O: the CLI passes the system resolver, tests pass a fixed table.
pub trait Resolve {
    /// All addresses of `host` (no port); `Err` with the OS message when the name does not resolve.
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String>;

    /// Does the system know this user (for `user`)? `None` = cannot tell, so no check (tests).
    fn user_exists(&self, _name: &str) -> Option<bool> {
        None
    }

    /// Does the system know this group? `None` = cannot tell.
    fn group_exists(&self, _name: &str) -> Option<bool> {
        None
    }
}

/// A resolver that knows only `localhost` (for tests and tools that must not touch the network).
pub struct NoNetwork;

impl Resolve for NoNetwork {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if host.eq_ignore_ascii_case("localhost") {
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        } else {
            Err("Name or service not known".into())
        }
    }
}

/// Which top-level context the file's directives are read in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shape {
    /// Decide from the directives (see the module docs).
    #[default]
    Auto,
    Full,
    Fragment,
}

pub struct CompileOptions {
    pub shape: Shape,
    /// nginx's prefix (`-p`): relative `pid`, log paths resolve against it.
    pub prefix: PathBuf,
    /// nginx's conf prefix (directory of `-c`): relative certificate paths resolve against it.
    pub conf_prefix: PathBuf,
    /// Port of a `server` without `listen` (nginx: 80 as root, else 8000).
    pub default_listen_port: u16,
    /// Running as root: `user` is checked against the system (`getpwnam("x") failed`); otherwise
    /// nginx warns that it is ignored.
    pub superuser: bool,
    /// Directives from `-g`, read in the main context before the file.
    pub global: Vec<Directive>,
    pub resolver: Arc<dyn Resolve + Send + Sync>,
}

impl std::fmt::Debug for CompileOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileOptions")
            .field("shape", &self.shape)
            .field("prefix", &self.prefix)
            .field("conf_prefix", &self.conf_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            shape: Shape::Auto,
            prefix: PathBuf::from(crate::cli::DEFAULT_PREFIX),
            conf_prefix: PathBuf::from(crate::cli::DEFAULT_PREFIX).join("conf"),
            default_listen_port: 80,
            superuser: false,
            global: Vec::new(),
            resolver: Arc::new(NoNetwork),
        }
    }
}

/// Is this top level a fragment (read as the contents of `http {}`)?
pub fn is_fragment(top: &[Directive]) -> bool {
    !top.iter().any(|d| is_main_only(&d.name))
}

/// A directive allowed in the main context but not inside `http`: its presence at the top level
/// makes a file a full configuration.
fn is_main_only(name: &str) -> bool {
    table::lookup(name).any(|c| c.ctx & table::MAIN != 0)
        && !table::lookup(name).any(|c| c.ctx & table::HTTP != 0)
}

/// The predefined `combined` format (ngx_http_log_module).
const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// Compiles a parsed configuration into a Plan; see the module docs for the order of checks.
/// `Ok((plan, warnings))`, or the first error (warnings before it are dropped; use
/// [`compile_collecting`] to keep them, as the CLI does).
pub fn compile(
    parsed: &Parsed,
    opts: &CompileOptions,
) -> Result<(Plan, Vec<ConfError>), ConfError> {
    let (result, warnings) = compile_collecting(parsed, opts);
    result.map(|plan| (plan, warnings))
}

/// Like [`compile`], but returns the warnings emitted before an error too (nginx prints them
/// ahead of the `[emerg]` line).
pub fn compile_collecting(
    parsed: &Parsed,
    opts: &CompileOptions,
) -> (Result<Plan, ConfError>, Vec<ConfError>) {
    compile_tree(parsed, Tree::Borrowed(&parsed.directives), opts)
}

/// Like [`compile_collecting`], but takes the tree out of `parsed` and frees it as soon as it was
/// walked, before the Plan is built (`parsed` keeps its files and error).
pub fn compile_collecting_owned(
    parsed: &mut Parsed,
    opts: &CompileOptions,
) -> (Result<Plan, ConfError>, Vec<ConfError>) {
    let tree = std::mem::take(&mut parsed.directives);
    compile_tree(parsed, Tree::Owned(tree), opts)
}

/// Reads `path` (and its includes) and compiles it as it is read: the file never exists as a
/// whole tree, only as the Plan being built (what the CLI does; a 300,000-line file would
/// otherwise hold its tree and its Plan at once). Same checks, order and messages as
/// [`compile_collecting`] on [`crate::conf::load_file`]'s tree. The returned [`Parsed`] has no
/// directives, only the files read (for `-T` and caret lines) and the syntax error, if any.
///
/// The file is read twice: a first pass only notes what must be known before the walk (is the
/// top level a fragment, which variables `map`s define), as [`compile`] looks at the tree.
///
/// With `keep_sources`, the files are read whole and kept in the returned [`Parsed`] (for `-T`,
/// and for serving: the supervisor hands the bytes it checked to the serving process); without,
/// they are read through a small window as they are tokenized ([`Reader::streaming`]) and only
/// their names are kept, so the text of a large file is never in memory whole either.
pub fn compile_file(
    path: &std::path::Path,
    lopts: &crate::conf::LoadOptions,
    opts: &CompileOptions,
    keep_sources: bool,
) -> (Result<Plan, ConfError>, Vec<ConfError>, Parsed) {
    let open = |path| {
        if keep_sources {
            Reader::open(path, lopts)
        } else {
            Reader::streaming(path, lopts)
        }
    };
    let outline = Outline::read(Reader::streaming(path, lopts));
    let fragment = match opts.shape {
        Shape::Auto => !outline.main_only,
        Shape::Full => false,
        Shape::Fragment => true,
    };
    let maps = if fragment {
        outline.top_maps
    } else {
        outline.http_maps
    };
    let mut reader = open(path);
    let mut w = walker(opts, &[], fragment);
    let result = walk_all(&mut w, &maps, &mut walk::StreamSrc::new(&mut reader));
    let (files, error) = reader.finish();
    let result = result.and_then(|()| match error.clone() {
        Some(e) => Err(e),
        None => finish_plan(&mut w, opts, &files),
    });
    let warnings = std::mem::take(&mut w.warnings);
    let parsed = Parsed {
        directives: Vec::new(),
        files,
        error,
    };
    (result, warnings, parsed)
}

/// What must be known before the walk, from a first reading of the file.
#[derive(Default)]
struct Outline {
    /// Some top-level directive belongs to the main context only (see [`is_fragment`]).
    main_only: bool,
    /// `$name` of the `map`s at the top level and directly inside `http` blocks.
    top_maps: Vec<String>,
    http_maps: Vec<String>,
}

impl Outline {
    fn read(reader: Reader) -> Outline {
        let mut o = Outline::default();
        // For each open block: is it a top-level `http`?
        let mut open: Vec<bool> = Vec::new();
        for event in reader {
            match event {
                Event::Directive(d) => {
                    let map = (d.name == "map")
                        .then(|| d.arg(1).and_then(|n| n.strip_prefix('$')))
                        .flatten();
                    match open.as_slice() {
                        [] => {
                            o.main_only |= is_main_only(&d.name);
                            o.top_maps.extend(map.map(str::to_string));
                        }
                        [true] => o.http_maps.extend(map.map(str::to_string)),
                        _ => {}
                    }
                    if d.block.is_some() {
                        open.push(open.is_empty() && d.name == "http");
                    }
                }
                Event::BlockEnd(_) => {
                    open.pop();
                }
            }
        }
        o
    }
}

/// The directives to walk: borrowed from the caller, or owned and dropped after the walk.
enum Tree<'a> {
    Borrowed(&'a [Directive]),
    Owned(Vec<Directive>),
}

impl Tree<'_> {
    fn get(&self) -> &[Directive] {
        match self {
            Tree::Borrowed(d) => d,
            Tree::Owned(d) => d,
        }
    }
}

fn walker<'a>(
    opts: &'a CompileOptions,
    sources: &'a [crate::conf::SourceFile],
    fragment: bool,
) -> walk::Walker<'a> {
    walk::Walker {
        opts,
        resolver: &*opts.resolver,
        vars: vars::Vars::default(),
        main: walk::MainRaw::default(),
        http: raw::Lvl::default(),
        servers: Vec::new(),
        upstreams: Vec::new(),
        maps: Vec::new(),
        map_names: Vec::new(),
        log_formats: Vec::new(),
        warnings: Vec::new(),
        listen_seen: Default::default(),
        plain: Vec::new(),
        plain_index: std::collections::HashMap::new(),
        cmdline: false,
        fragment,
        sources,
    }
}

fn compile_tree(
    parsed: &Parsed,
    tree: Tree,
    opts: &CompileOptions,
) -> (Result<Plan, ConfError>, Vec<ConfError>) {
    let fragment = match opts.shape {
        Shape::Auto => is_fragment(tree.get()),
        Shape::Full => false,
        Shape::Fragment => true,
    };
    // Map outputs are known before the walk so any template may use them.
    let mut maps = Vec::new();
    let mut register = |dirs: &[Directive]| {
        for d in dirs.iter().filter(|d| d.name == "map") {
            if let Some(name) = d.arg(1).and_then(|n| n.strip_prefix('$')) {
                maps.push(name.to_string());
            }
        }
    };
    if fragment {
        register(tree.get());
    } else {
        for h in tree.get().iter().filter(|d| d.name == "http") {
            register(h.block.as_deref().unwrap_or(&[]));
        }
    }
    let mut w = walker(opts, &parsed.files, fragment);
    let walked = walk_all(&mut w, &maps, &mut walk::TreeSrc::new(tree.get()));
    // Everything the Plan needs is in the walker's raw levels now.
    drop(tree);
    let result = walked.and_then(|()| match &parsed.error {
        Some(e) => Err(e.clone()),
        None => finish_plan(&mut w, opts, &parsed.files),
    });
    (result, std::mem::take(&mut w.warnings))
}

/// Step 1: registers the `map` outputs, then walks `-g` and the file.
fn walk_all(
    w: &mut walk::Walker,
    maps: &[String],
    src: &mut dyn walk::Src,
) -> Result<(), ConfError> {
    for (index, name) in maps.iter().enumerate() {
        w.vars.add_map(name, index as u32);
        w.map_names.push(name.clone());
    }
    let combined_tpl = w.vars.template(COMBINED).map_err(ConfError::nowhere)?;
    w.log_formats.push(Arc::new(LogFormat {
        name: "combined".into(),
        escape: LogEscape::Default,
        template: combined_tpl,
    }));
    w.cmdline = true;
    let global = w.opts.global.clone();
    w.block(
        &mut walk::TreeSrc::new(&global),
        table::MAIN,
        &mut walk::Target::Main,
    )?;
    w.cmdline = false;
    if w.fragment {
        w.main.http = true;
        w.block(src, table::HTTP, &mut walk::Target::Http)
    } else {
        w.block(src, table::MAIN, &mut walk::Target::Main)
    }
}

/// Step 2: post-parse checks, in nginx's order, and the Plan.
fn finish_plan(
    w: &mut walk::Walker,
    opts: &CompileOptions,
    files: &[crate::conf::SourceFile],
) -> Result<Plan, ConfError> {
    let fragment = w.fragment;
    let combined = w.log_formats[0].clone();
    // 2. Post-parse checks, in nginx's order.
    let main = main_conf(w, opts);
    let raw_servers = std::mem::take(&mut w.servers);
    let http_lvl = w.http.clone();
    let maps = std::mem::take(&mut w.maps);
    let log_formats = w.log_formats.clone();
    let mut f = finish::Finisher::new(&mut *w, combined);
    let upstreams = f.upstreams()?;
    let mut servers = Vec::new();
    for (i, s) in raw_servers.into_iter().enumerate() {
        f.check_duplicates(&s.locations)?;
        let m = finish::merge_server(&s.lvl, &http_lvl);
        let conf = Arc::new(LocConf::from(f.settings(&m, i, false)?));
        let tls = f.tls(&s, &m)?;
        let raw::RawServer {
            names,
            listens,
            ops,
            locations: raw_locations,
            span,
            ..
        } = s;
        let rewrites = f.server_ops(ops, &m, i)?;
        let mut locations = Vec::with_capacity(raw_locations.len());
        let mut named = Vec::new();
        // Every location that sets nothing of its own shares one merged `LocSettings`.
        let mut shared = finish::Shared::default();
        // In file order, taken from the end of the reversed raw list, which gives its memory
        // back as it shrinks: the raw locations and the Plan's are not all alive at once.
        let mut raw_locations = raw_locations;
        raw_locations.reverse();
        while let Some(l) = raw_locations.pop() {
            let loc = f.location(l, &m, i, &mut shared)?;
            if matches!(loc.matcher, LocMatch::Named(_)) {
                named.push(loc);
            } else {
                locations.push(loc);
            }
            if raw_locations.len() % 4096 == 0 {
                raw_locations.shrink_to_fit();
            }
        }
        named.shrink_to_fit();
        servers.push(Arc::new(Server {
            names,
            listens: listens
                .into_iter()
                .map(|(a, mut o)| {
                    // `http2 on` (nginx >= 1.25.1) enables HTTP/2 on the server's addresses, as
                    // `listen ... http2` does.
                    o.http2 |= m.http2 == Some(true);
                    (a, o)
                })
                .collect(),
            locations,
            named,
            conf,
            rewrites,
            tls,
            span,
        }));
    }
    drop(f);
    let listens = listen_groups(&servers);
    // ngx_http_ssl_init: the default server of every `ssl` address needs a certificate.
    for g in listens.iter().filter(|g| g.opts.ssl) {
        if let Some(s) = servers.get(g.default_server).filter(|s| s.tls.is_none()) {
            return Err(ConfError::nowhere(format!(
                "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in {}:{}",
                s.span.file, s.span.line
            )));
        }
    }
    if let Some(name) = w.vars.first_undefined() {
        return Err(ConfError::nowhere(format!("unknown \"{name}\" variable")));
    }
    conflicting_names(&listens, &servers, &mut w.warnings);
    if !fragment && !w.main.events {
        return Err(ConfError::nowhere("no \"events\" section in configuration"));
    }
    let plan = Plan {
        main,
        http: Http {
            servers,
            listens,
            upstreams,
            maps,
            log_formats,
            slots: w.vars.slots.clone(),
        },
        files: files.iter().map(|f| PathBuf::from(&*f.path)).collect(),
    };
    Ok(plan)
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn main_conf(w: &walk::Walker, opts: &CompileOptions) -> MainConf {
    let m = &w.main;
    let abs = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            opts.prefix.join(p)
        }
    };
    let mut error_logs: Vec<ErrorLog> = m
        .error_logs
        .iter()
        .map(|l| ErrorLog {
            path: l.path.as_ref().map(|p| abs(&p.to_string_lossy())),
            ..l.clone()
        })
        .collect();
    if error_logs.is_empty() {
        // A fragment has no main context: like the official Docker image (whose error log is a
        // link to stderr), it logs errors to stderr rather than to a prefix that may not exist.
        error_logs.push(ErrorLog {
            path: (!w.fragment).then(|| abs("logs/error.log")),
            level: crate::conf::Level::Error,
            span: None,
        });
    }
    MainConf {
        worker_processes: m.worker_processes.unwrap_or(Some(1)),
        worker_connections: m.worker_connections.unwrap_or(512),
        pid: match m.pid.as_deref() {
            Some(p) => abs(p),
            // A fragment run as root keeps its pid where the Docker image keeps nginx's.
            None if w.fragment && running_as_root() => PathBuf::from("/run/nginx-rs.pid"),
            None => abs("logs/nginx.pid"),
        },
        error_logs,
        daemon: m.daemon.unwrap_or(false),
        master_process: m.master_process.unwrap_or(true),
        user: m.user.clone(),
        worker_rlimit_nofile: m.worker_rlimit_nofile,
        worker_shutdown_timeout: m.worker_shutdown_timeout.filter(|t| *t > Duration::ZERO),
    }
}

/// nginx's `conflicting server name "x" on ADDR, ignored` warning: the same name on two servers
/// of one address (the first one keeps it).
fn conflicting_names(
    groups: &[ListenGroup],
    servers: &[Arc<Server>],
    warnings: &mut Vec<ConfError>,
) {
    for g in groups {
        let mut seen = std::collections::HashSet::new();
        for s in g.servers.iter().filter_map(|i| servers.get(*i)) {
            for n in &s.names {
                let key = match n {
                    ServerName::Exact(x) => format!("={x}"),
                    ServerName::LeadingWildcard(x) => format!("*{x}"),
                    ServerName::TrailingWildcard(x) => format!("{x}*"),
                    ServerName::Regex(_) => continue,
                };
                if !seen.insert(key) {
                    let shown = match n {
                        ServerName::Exact(x) => x.clone(),
                        ServerName::LeadingWildcard(x) if x.starts_with('.') => format!("*{x}"),
                        ServerName::LeadingWildcard(x) => x.clone(),
                        ServerName::TrailingWildcard(x) => format!("{x}*"),
                        ServerName::Regex(_) => continue,
                    };
                    let addr = match &g.addr {
                        ListenAddr::Inet(a) => a.to_string(),
                        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
                    };
                    let mut w = ConfError::nowhere(format!(
                        "conflicting server name \"{shown}\" on {addr}, ignored"
                    ));
                    w.level = Level::Warn;
                    warnings.push(w);
                }
            }
        }
    }
}

/// Every listen address with its servers; the `default_server` one (or the first) is the default.
fn listen_groups(servers: &[Arc<Server>]) -> Vec<ListenGroup> {
    let mut groups: Vec<ListenGroup> = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        for (addr, opts) in &s.listens {
            let g = match groups.iter_mut().position(|g| g.addr == *addr) {
                Some(p) => &mut groups[p],
                None => {
                    groups.push(ListenGroup {
                        addr: addr.clone(),
                        opts: opts.clone(),
                        servers: Vec::new(),
                        default_server: i,
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            if !g.servers.contains(&i) {
                g.servers.push(i);
            }
            if opts.default_server {
                g.default_server = i;
                g.opts.default_server = true;
            }
            let o = &mut g.opts;
            o.ssl |= opts.ssl;
            o.http2 |= opts.http2;
            o.proxy_protocol |= opts.proxy_protocol;
            o.reuseport |= opts.reuseport;
            o.backlog = o.backlog.or(opts.backlog);
            o.ipv6only = o.ipv6only.or(opts.ipv6only);
        }
    }
    groups
}

#[cfg(test)]
mod conf_api {
    pub use crate::conf::parser::Parsed;
    pub use crate::conf::{Arg, ConfError, Directive, Quote, SourceFile, Span};
}

#[cfg(test)]
#[path = "../../tests/support/mini.rs"]
pub(crate) mod mini;

#[cfg(test)]
mod tests;

/// Errors nginx reports after printing `syntax is ok` (they come from module init, not parsing).
pub fn is_after_syntax(e: &ConfError) -> bool {
    e.message == "no \"events\" section in configuration"
}

/// Checks a parsed configuration without keeping the Plan (what `-t` and the golden runners
/// need): `Ok(warnings)` or the first error. `shape` picks the top-level context; names resolve
/// through `resolver`.
pub fn check(
    parsed: &Parsed,
    shape: Shape,
    resolver: Arc<dyn Resolve + Send + Sync>,
) -> Result<Vec<ConfError>, ConfError> {
    let opts = CompileOptions {
        shape,
        resolver,
        ..Default::default()
    };
    compile(parsed, &opts).map(|(_, warnings)| warnings)
}
