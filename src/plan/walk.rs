//! The dispatcher (nginx's `ngx_conf_handler`) and the block directives. For every directive, in
//! file order: known? allowed in this context? `;` versus `{`? argument count? then its handler.
//! The first error stops the walk, like nginx.

use std::collections::HashMap;
use std::sync::Arc;

use crate::conf::{ConfError, Directive, Origin, Span};

use super::raw::*;
use super::table::{self, Cmd, Ctx};
use super::types::*;
use super::values::{self, did_you_mean};
use super::vars::Vars;
use super::{CompileOptions, Resolve};

pub type Res<T> = Result<T, ConfError>;

/// Where the walk reads directives from: a tree already in memory ([`TreeSrc`]) or the streaming
/// [`crate::conf::Reader`] ([`StreamSrc`]), so that a large file is compiled as it is read and never
/// held as a whole tree.
///
/// A block directive comes with `block: Some(empty)`; its contents are the directives that
/// follow, up to `None` (the block's end). The handler of a block directive reads its contents
/// before returning.
pub trait Src {
    /// The next directive of the current block; `None` at its end, at the end of the input, or
    /// when the reader stopped on an error (every open block then ends).
    fn next_directive(&mut self) -> Option<Directive>;
    /// Where the block finished last was closed (its `}`), when the source knows it.
    fn closed_at(&self) -> Option<Span>;
}

/// Walks a tree: each directive comes out as a copy without its block (cheap: name and words),
/// and its block's children follow.
pub struct TreeSrc<'t> {
    stack: Vec<std::slice::Iter<'t, Directive>>,
}

impl<'t> TreeSrc<'t> {
    pub fn new(top: &'t [Directive]) -> TreeSrc<'t> {
        TreeSrc {
            stack: vec![top.iter()],
        }
    }
}

impl Src for TreeSrc<'_> {
    fn next_directive(&mut self) -> Option<Directive> {
        let it = self.stack.last_mut()?;
        match it.next() {
            Some(d) => {
                if let Some(b) = &d.block {
                    self.stack.push(b.iter());
                }
                Some(Directive {
                    name: d.name.clone(),
                    args: d.args.clone(),
                    block: d.block.as_ref().map(|_| Vec::new()),
                    span: d.span.clone(),
                })
            }
            None => {
                self.stack.pop();
                None
            }
        }
    }

    fn closed_at(&self) -> Option<Span> {
        None
    }
}

/// Walks the streaming reader.
pub struct StreamSrc<'r> {
    pub reader: &'r mut crate::conf::Reader,
    closed: Option<Span>,
}

impl<'r> StreamSrc<'r> {
    pub fn new(reader: &'r mut crate::conf::Reader) -> StreamSrc<'r> {
        StreamSrc {
            reader,
            closed: None,
        }
    }
}

impl Src for StreamSrc<'_> {
    fn next_directive(&mut self) -> Option<Directive> {
        match self.reader.next() {
            Some(crate::conf::Event::Directive(d)) => Some(d),
            Some(crate::conf::Event::BlockEnd(span)) => {
                self.closed = Some(span);
                None
            }
            None => {
                self.closed = None;
                None
            }
        }
    }

    fn closed_at(&self) -> Option<Span> {
        self.closed.clone()
    }
}

/// The contents of the block just opened, as a tree (for `map` and `types`, whose handlers look
/// at their entries as a whole; such blocks are small).
fn body_tree(src: &mut dyn Src) -> Vec<Directive> {
    let mut out = Vec::new();
    while let Some(mut d) = src.next_directive() {
        if d.block.is_some() {
            d.block = Some(body_tree(src));
        }
        out.push(d);
    }
    out
}

/// Builds errors without borrowing the walker (handlers hold a `&mut Lvl` into it).
#[derive(Clone, Copy)]
pub struct Ec {
    pub cmdline: bool,
}

impl Ec {
    pub fn e(self, msg: impl Into<String>, span: &Span) -> ConfError {
        let mut e = ConfError::emerg(msg, span);
        if self.cmdline {
            e.origin = Origin::CommandLine;
        }
        e
    }
}

/// Main-context settings as written.
#[derive(Debug, Default)]
pub struct MainRaw {
    pub daemon: Option<bool>,
    pub master_process: Option<bool>,
    pub pid: Option<String>,
    pub worker_processes: Option<Option<usize>>,
    pub user: Option<(String, Option<String>)>,
    pub worker_rlimit_nofile: Option<u64>,
    pub worker_shutdown_timeout: Option<std::time::Duration>,
    pub pcre_jit: Option<bool>,
    pub error_logs: Vec<ErrorLog>,
    pub worker_connections: Option<usize>,
    pub multi_accept: Option<bool>,
    pub accept_mutex: Option<bool>,
    pub accept_mutex_delay: Option<std::time::Duration>,
    pub use_method: Option<String>,
    pub events: bool,
    pub http: bool,
}

/// Where the directives of the current block go.
pub enum Target<'x> {
    Main,
    Events,
    Http,
    Server(&'x mut RawServer),
    Loc(&'x mut RawLoc),
    If {
        lvl: &'x mut Lvl,
        ops: &'x mut Vec<RawOp>,
    },
    Ups(&'x mut RawUpstream),
}

pub struct Walker<'a> {
    pub opts: &'a CompileOptions,
    pub resolver: &'a dyn Resolve,
    pub vars: Vars,
    pub main: MainRaw,
    pub http: Lvl,
    pub servers: Vec<RawServer>,
    pub upstreams: Vec<RawUpstream>,
    pub maps: Vec<Map>,
    /// Map output names in map order (registered before the walk so templates can use them).
    pub map_names: Vec<String>,
    pub log_formats: Vec<Arc<LogFormat>>,
    pub warnings: Vec<ConfError>,
    /// Listen addresses seen so far: address → (has a default_server, has options), for nginx's
    /// `a duplicate default server` and `duplicate listen options` checks.
    pub listen_seen: HashMap<ListenAddr, (bool, bool)>,
    /// Interned plain location bodies (see [`RawLoc::plain`]), and their index by key.
    pub plain: Vec<(PlainKey, Span)>,
    pub plain_index: HashMap<PlainKey, usize>,
    /// True while walking `-g` directives: errors say `in command line`.
    pub cmdline: bool,
    /// The file is a `conf.d` fragment: its logs and pid default like the official nginx Docker
    /// image's main `nginx.conf` (see [`super::main_conf`]).
    pub fragment: bool,
    /// Source texts, to find the line of a block's closing `}`.
    pub sources: &'a [crate::conf::SourceFile],
}

impl<'a> Walker<'a> {
    /// An `[emerg]` at `span` (or `in command line` for `-g`).
    pub fn err(&self, msg: impl Into<String>, span: &Span) -> ConfError {
        let mut e = ConfError::emerg(msg, span);
        if self.cmdline {
            e.origin = Origin::CommandLine;
        }
        e
    }

    pub fn warn(&mut self, msg: impl Into<String>, span: &Span) {
        let mut e = self.err(msg, span);
        e.level = crate::conf::Level::Warn;
        self.warnings.push(e);
    }

    /// Pointing the caret at argument `i` rather than the directive name.
    pub fn err_arg(&self, msg: impl Into<String>, d: &Directive, i: usize) -> ConfError {
        let mut e = self.err(msg, &d.span);
        if let (Origin::At(s), Some(a)) = (&mut e.origin, d.args.get(i)) {
            if a.span.line == s.line {
                s.col = a.span.col;
            }
        }
        e
    }

    /// Walks the directives of the current block of `src`, up to its end.
    pub fn block(&mut self, src: &mut dyn Src, ctx: Ctx, tgt: &mut Target) -> Res<()> {
        while let Some(d) = src.next_directive() {
            self.directive(&d, src, ctx, tgt)?;
        }
        Ok(())
    }

    fn directive(
        &mut self,
        d: &Directive,
        src: &mut dyn Src,
        ctx: Ctx,
        tgt: &mut Target,
    ) -> Res<()> {
        let name = d.name.as_str();
        let mut found = false;
        let mut cmd: Option<&'static Cmd> = None;
        for c in table::lookup(name) {
            found = true;
            if c.ctx & ctx != 0 {
                cmd = Some(c);
                break;
            }
        }
        if !found {
            if table::UNSUPPORTED.contains(&name) {
                return Err(self.err(
                    format!("\"{name}\" directive is not supported by nginx-rs"),
                    &d.span,
                ));
            }
            let mut e = self.err(format!("unknown directive \"{name}\""), &d.span);
            if let Some(s) = did_you_mean(name, table::names()) {
                e = e.with_hint(format!("did you mean \"{s}\"?"));
            }
            return Err(e);
        }
        let Some(cmd) = cmd else {
            return Err(self.err(format!("\"{name}\" directive is not allowed here"), &d.span));
        };
        if !cmd.block && d.block.is_some() {
            return Err(self.err(
                format!("directive \"{name}\" is not terminated by \";\""),
                &d.span,
            ));
        }
        if cmd.block && d.block.is_none() {
            return Err(self.err(
                format!("directive \"{name}\" has no opening \"{{\""),
                &d.span,
            ));
        }
        if !cmd.arity.accepts(d.args.len()) {
            return Err(self.err(
                format!("invalid number of arguments in \"{name}\" directive"),
                &d.span,
            ));
        }
        if cmd.arity == table::Arity::Flag && values::parse_flag(&d.args[0].value).is_none() {
            return Err(self.err_arg(
                format!(
                    "invalid value \"{}\" in \"{name}\" directive, it must be \"on\" or \"off\"",
                    d.args[0].value
                ),
                d,
                0,
            ));
        }
        // From here on, handlers may index `d.args` up to the minimum their arity guarantees.
        self.handle(cmd, d, src, ctx, tgt)
    }

    fn handle(
        &mut self,
        cmd: &Cmd,
        d: &Directive,
        src: &mut dyn Src,
        ctx: Ctx,
        tgt: &mut Target,
    ) -> Res<()> {
        match (d.name.as_str(), cmd.ctx) {
            ("events", _) => {
                if self.main.events {
                    return Err(self.err("\"events\" directive is duplicate", &d.span));
                }
                self.main.events = true;
                self.block(src, table::EVENT, &mut Target::Events)
            }
            ("http", _) => {
                if self.main.http {
                    return Err(self.err("\"http\" directive is duplicate", &d.span));
                }
                self.main.http = true;
                self.block(src, table::HTTP, &mut Target::Http)
            }
            ("server", table::HTTP) => self.server_block(d, src),
            ("server", _) => match tgt {
                Target::Ups(u) => self.upstream_server(d, u),
                _ => Ok(()),
            },
            ("upstream", _) => self.upstream_block(d, src),
            ("location", _) => self.location_block(d, src, tgt),
            ("if", _) => self.if_block(d, src, ctx, tgt),
            ("map", _) => self.map_block(d, &body_tree(src)),
            ("types", _) => self.types_block(d, &body_tree(src), tgt),
            ("include", _) => Ok(()), // expanded by the parser
            _ => self.simple(d, ctx, tgt),
        }
    }

    fn server_block(&mut self, d: &Directive, src: &mut dyn Src) -> Res<()> {
        let mut srv = RawServer {
            names: Vec::new(),
            listens: Vec::new(),
            lvl: Lvl::default(),
            ops: Vec::new(),
            locations: Vec::new(),
            span: d.span.clone(),
        };
        self.block(src, table::SRV, &mut Target::Server(&mut srv))?;
        srv.locations.shrink_to_fit();
        if srv.listens.is_empty() {
            let addr = ListenAddr::Inet(std::net::SocketAddr::from((
                [0, 0, 0, 0],
                self.opts.default_listen_port,
            )));
            self.add_listen(&mut srv, addr, ListenOpts::default(), false, &d.span)?;
        }
        if srv.names.is_empty() {
            srv.names.push(ServerName::Exact(String::new()));
        }
        self.servers.push(srv);
        Ok(())
    }

    /// nginx's `ngx_http_add_listen` checks, done as each `listen` is read.
    pub fn add_listen(
        &mut self,
        srv: &mut RawServer,
        addr: ListenAddr,
        opts: ListenOpts,
        has_opts: bool,
        span: &Span,
    ) -> Res<()> {
        let text = match &addr {
            ListenAddr::Inet(a) => a.to_string(),
            ListenAddr::Unix(p) => format!("unix:{}", p.display()),
        };
        if srv.listens.iter().any(|(a, _)| *a == addr) {
            return Err(self.err(format!("a duplicate listen {text}"), span));
        }
        let seen = self
            .listen_seen
            .entry(addr.clone())
            .or_insert((false, false));
        if opts.default_server {
            if seen.0 {
                return Err(self.err(format!("a duplicate default server for {text}"), span));
            }
            seen.0 = true;
        }
        if has_opts {
            if seen.1 {
                return Err(self.err(format!("duplicate listen options for {text}"), span));
            }
            seen.1 = true;
        }
        srv.listens.push((addr, opts));
        Ok(())
    }

    fn upstream_block(&mut self, d: &Directive, src: &mut dyn Src) -> Res<()> {
        let name = d.args[0].value.clone();
        if let Some(prev) = self
            .upstreams
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(&name))
        {
            if !prev.implicit {
                return Err(self.err(format!("duplicate upstream \"{name}\""), &d.span));
            }
            if prev.port_written {
                return Err(self.err(
                    format!("upstream \"{name}\" may not have port {}", prev.port),
                    &prev.span,
                ));
            }
        }
        let mut u = RawUpstream {
            name: name.to_string(),
            method: None,
            servers: Vec::new(),
            keepalive: None,
            keepalive_requests: None,
            keepalive_timeout: None,
            keepalive_time: None,
            zone: None,
            implicit: false,
            port: 0,
            port_written: false,
            span: d.span.clone(),
        };
        self.block(src, table::UPS, &mut Target::Ups(&mut u))?;
        if u.servers.is_empty() {
            let end = src.closed_at().unwrap_or_else(|| self.block_end(d));
            return Err(self.err("no servers are inside upstream", &end));
        }
        // An implicit group of the same name (from an earlier proxy_pass) is replaced by this one.
        self.upstreams
            .retain(|p| !(p.implicit && p.name.eq_ignore_ascii_case(&name)));
        self.upstreams.push(u);
        Ok(())
    }

    /// The line of the `}` that closes `d`'s block: messages nginx emits after reading a block use
    /// it. Found by scanning the source after the directive's last argument (skipping comments and
    /// quoted strings); falls back to the directive's own line.
    pub fn block_end(&self, d: &Directive) -> Span {
        let start = d.args.last().map(|a| &a.span).unwrap_or(&d.span);
        let Some(src) = self.sources.iter().find(|f| *f.path == *start.file) else {
            return d.span.clone();
        };
        let Some(text) = &src.text else {
            return d.span.clone();
        };
        // Byte offset of the start line.
        let mut line = 1u32;
        let mut i = 0usize;
        while i < text.len() && line < start.line {
            if text[i] == b'\n' {
                line += 1;
            }
            i += 1;
        }
        i += (start.col as usize).saturating_sub(1);
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        while i < text.len() {
            let c = text[i];
            match quote {
                Some(q) => {
                    if c == b'\\' {
                        i += 1;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    b'#' => {
                        while i < text.len() && text[i] != b'\n' {
                            i += 1;
                        }
                        continue;
                    }
                    b'"' | b'\'' => quote = Some(c),
                    b'\\' => i += 1,
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Span::new(start.file, line, 1);
                        }
                    }
                    _ => {}
                },
            }
            if i < text.len() && text[i] == b'\n' {
                line += 1;
            }
            i += 1;
        }
        d.span.clone()
    }

    fn location_block(&mut self, d: &Directive, src: &mut dyn Src, tgt: &mut Target) -> Res<()> {
        let a0 = d.args[0].value.as_str();
        let (modifier, name) = if d.args.len() == 2 {
            (a0, d.args[1].value.as_str())
        } else if let Some(rest) = a0.strip_prefix("^~") {
            ("^~", rest)
        } else if let Some(rest) = a0.strip_prefix("~*") {
            ("~*", rest)
        } else if let Some(rest) = a0.strip_prefix('~') {
            ("~", rest)
        } else if let Some(rest) = a0.strip_prefix('=') {
            ("=", rest)
        } else {
            ("", a0)
        };
        if d.args.len() == 2 && !matches!(modifier, "=" | "^~" | "~" | "~*") {
            return Err(self.err(format!("invalid location modifier \"{modifier}\""), &d.span));
        }
        let matcher = match modifier {
            "=" => LocMatch::Exact(name.into()),
            "^~" => LocMatch::Prefix {
                path: name.into(),
                no_regex: true,
            },
            "~" | "~*" => {
                let re = self
                    .vars
                    .regex(name, modifier == "~*")
                    .map_err(|m| self.err(m, &d.span))?;
                LocMatch::Regex(Box::new(re))
            }
            _ if name.starts_with('@') => LocMatch::Named(name.into()),
            _ => LocMatch::Prefix {
                path: name.into(),
                no_regex: false,
            },
        };
        // Nesting rules (ngx_http_core_location).
        if let Target::Loc(parent) = &*tgt {
            let parent_name = parent.name();
            match &parent.matcher {
                LocMatch::Exact(_) => {
                    return Err(self.err(
                        format!("location \"{name}\" cannot be inside the exact location \"{parent_name}\""),
                        &d.span,
                    ));
                }
                LocMatch::Named(_) => {
                    return Err(self.err(
                        format!("location \"{name}\" cannot be inside the named location \"{parent_name}\""),
                        &d.span,
                    ));
                }
                _ => {}
            }
            if let LocMatch::Named(n) = &matcher {
                return Err(self.err(
                    format!("named location \"{n}\" can be on the server level only"),
                    &d.span,
                ));
            }
            // A non-regex location must start with its parent's name as written (for a regex
            // parent, its pattern text: nginx compares the strings).
            if !matches!(matcher, LocMatch::Regex(_)) && !name.starts_with(parent_name) {
                return Err(self.err(
                    format!("location \"{name}\" is outside location \"{parent_name}\""),
                    &d.span,
                ));
            }
        }
        let mut loc = RawLoc {
            matcher,
            lvl: None,
            ops: Vec::new(),
            children: Vec::new(),
            span: d.span.clone(),
            plain: 0,
        };
        self.block(src, table::LOC, &mut Target::Loc(&mut loc))?;
        if loc.lvl.is_none() && loc.children.is_empty() {
            if let Some(key) = plain_key(&loc.ops) {
                let span = match loc.ops.first() {
                    Some(RawOp::Op(RewriteOp::Return { span, .. })) => span.clone(),
                    _ => loc.span.clone(),
                };
                let next = self.plain.len();
                let index = *self.plain_index.entry(key.clone()).or_insert_with(|| {
                    self.plain.push((key, span));
                    next
                });
                loc.plain = u32::try_from(index + 1).unwrap_or(0);
                if loc.plain != 0 {
                    loc.ops = Vec::new();
                }
            }
        }
        // Exact sizes: a file may hold 100,000 locations of one `return` each.
        loc.ops.shrink_to_fit();
        loc.children.shrink_to_fit();
        match tgt {
            Target::Server(s) => s.locations.push(loc),
            Target::Loc(p) => p.children.push(loc),
            _ => {}
        }
        Ok(())
    }

    fn if_block(
        &mut self,
        d: &Directive,
        src: &mut dyn Src,
        ctx: Ctx,
        tgt: &mut Target,
    ) -> Res<()> {
        let cond = self.condition(d)?;
        let inner = if ctx == table::SRV {
            table::SIF
        } else {
            table::LIF
        };
        let mut lvl = Lvl::default();
        let mut ops = Vec::new();
        self.block(
            src,
            inner,
            &mut Target::If {
                lvl: &mut lvl,
                ops: &mut ops,
            },
        )?;
        let op = RawOp::If {
            cond: Box::new(cond),
            ops,
            lvl: Box::new(lvl),
            span: d.span.clone(),
        };
        match tgt {
            Target::Server(s) => s.ops.push(op),
            Target::Loc(l) => l.ops.push(op),
            _ => {}
        }
        Ok(())
    }

    fn map_block(&mut self, d: &Directive, body: &[Directive]) -> Res<()> {
        let index = self.maps.len() as u32;
        let source = self
            .vars
            .template(&d.args[0].value)
            .map_err(|m| self.err(m, &d.span))?;
        let dst = &d.args[1].value;
        let Some(dst_name) = dst.strip_prefix('$') else {
            return Err(self.err(format!("invalid variable name \"{dst}\""), &d.span));
        };
        self.vars.add_map(dst_name, index);
        let mut map = Map {
            source,
            hostnames: false,
            default: None,
            exact: Vec::new(),
            regexes: Vec::new(),
            span: d.span.clone(),
        };
        for e in body {
            let mut words: Vec<&str> = vec![e.name.as_str()];
            words.extend(e.args.iter().map(|a| a.value.as_str()));
            if words.len() == 1 && (words[0] == "hostnames" || words[0] == "volatile") {
                map.hostnames |= words[0] == "hostnames";
                continue;
            }
            if words.len() != 2 || e.block.is_some() {
                return Err(self.err("invalid number of the map parameters", &e.span));
            }
            let value = self
                .vars
                .template(words[1])
                .map_err(|m| self.err(m, &e.span))?;
            let key = words[0];
            if key == "default" {
                if map.default.is_some() {
                    return Err(self.err("duplicate default map parameter", &e.span));
                }
                map.default = Some(value);
            } else if let Some(re) = key.strip_prefix('~') {
                let (caseless, re) = match re.strip_prefix('*') {
                    Some(r) => (true, r),
                    None => (false, re),
                };
                let re = self
                    .vars
                    .regex(re, caseless)
                    .map_err(|m| self.err(m, &e.span))?;
                map.regexes.push((re, value));
            } else {
                let key = key.strip_prefix('\\').unwrap_or(key);
                let key = if map.hostnames {
                    key.to_ascii_lowercase()
                } else {
                    key.to_string()
                };
                if map.exact.iter().any(|(k, _)| *k == key) {
                    return Err(
                        self.err(format!("conflicting parameter \"{}\"", words[0]), &e.span)
                    );
                }
                map.exact.push((key, value));
            }
        }
        self.maps.push(map);
        Ok(())
    }

    fn types_block(&mut self, d: &Directive, body: &[Directive], tgt: &mut Target) -> Res<()> {
        let mut types = Vec::new();
        for e in body {
            if e.block.is_some() || e.args.is_empty() {
                return Err(self.err(
                    "invalid number of arguments in \"types\" directive",
                    &e.span,
                ));
            }
            for ext in &e.args {
                types.push((ext.value.to_ascii_lowercase(), e.name.to_string()));
            }
        }
        let dup = self.err("\"types\" directive is duplicate", &d.span);
        let Some(lvl) = self.lvl(tgt) else {
            return Ok(());
        };
        if lvl.types.is_some() {
            return Err(dup);
        }
        lvl.types = Some(types);
        Ok(())
    }

    /// The level a value directive writes to.
    pub fn lvl<'t>(&'t mut self, tgt: &'t mut Target) -> Option<&'t mut Lvl> {
        match tgt {
            Target::Http => Some(&mut self.http),
            Target::Server(s) => Some(&mut s.lvl),
            Target::Loc(l) => Some(l.lvl.get_or_insert_with(Box::default)),
            Target::If { lvl, .. } => Some(lvl),
            _ => None,
        }
    }
}
