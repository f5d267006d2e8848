//! nginx-rs: a memory-safe reverse proxy and load balancer that runs nginx configurations unmodified.
//!
//! # Bird's-eye view
//!
//! ```text
//!  text ──conf──▶ directives ──plan──▶ Plan ──runtime──▶ listeners, router, balancers, proxy, logs
//!   (lexer + nom parser,   (directive table: contexts,    (tokio, own HTTP/1, hyper for TLS/h2;
//!    includes, spans;       arity, value checks; typed,     works from the Plan only)  ▲
//!    one at a time, or      inherited, templates compiled)   cli / control (flags, pid, signals)
//!    as an AST tree)
//! ```
//!
//! # Codemap
//! - [`conf`]: nginx's tokenizer rules and a nom parser. [`conf::Reader`] yields one
//!   [`conf::Directive`] at a time with file/line/column spans, `include` expanded in place; the
//!   tree builder ([`conf::load_file`]) collects them into a tree (for `conf::dump`, the grammar
//!   goldens, tools). The lexer reads a whole text, or a file through a 64 KB window
//!   ([`conf::Reader::streaming`], what `-t` uses). Errors are [`conf::ConfError`], formatted as
//!   nginx's. Kept compact for 100,000-location files: words are [`conf::Text`] (inline up to 22
//!   bytes), spans name their file by an interned [`conf::FileName`].
//! - [`plan`]: the directive table (nginx's `ngx_command_t` as data) and the compiler to the typed
//!   [`plan::Plan`]: servers, locations, upstreams, compiled variable [`plan::Template`]s. It walks
//!   a tree ([`plan::compile`]) or a reader ([`plan::compile_file`], what the CLI uses: no tree is
//!   ever alive next to the Plan). A location's [`plan::LocConf`] is its own rewrite steps plus
//!   merged [`plan::LocSettings`] shared with every sibling that sets nothing itself; siblings
//!   with the same plain body (`return 200;`) share the whole `LocConf`.
//! - [`runtime`]: everything that serves traffic, driven by a `Plan` held in a [`runtime::Live`]
//!   behind an `ArcSwap`. Per connection: `server` (accept loop) → `handshake` (PROXY protocol, TLS,
//!   HTTP/2 choice; a plain socket is a `client_tcp`, which `proxy` watches for the client going
//!   away while it waits on the upstream) → plain HTTP/1: `h1`, nginx-rs's own HTTP/1 server (one
//!   parse of each head with nginx's rules, request bodies, response framing, pipelining,
//!   `client_header_timeout` / `keepalive_timeout` / `send_timeout`, upgrades; an idle connection
//!   holds no buffer and parks after 10-20 ms, `park`: its task ends and its socket waits outside
//!   tokio in its listener's `dormant` set, an epoll instance of its own, until the next
//!   request gives it a new task); TLS and HTTP/2: `guard` (the same head
//!   checks before hyper; records what hyper's request loses: header-name spelling, `#fragment`;
//!   times `client_header_timeout`; ends hyper's connection when the client has been idle 10-20
//!   ms, and `server` starts a new one on its next request) → hyper → `request`
//!   (server choice, URI) → `edge`
//!   (nginx's phases: realip, rewrite, find-config, access, content: `return`, `stub_status`,
//!   `metrics` or `proxy`; `error_page`; header filter) → `proxy` (retry loop over
//!   `upstream`: balancers, peer health, keepalive pools (one shard per worker thread, numbered
//!   by `worker`), connect, and `upstream::h1`, nginx-rs's
//!   own HTTP/1 client that writes the request head byte for byte as nginx does). `log` writes
//!   access and error logs off the request path; `status` keeps the counters.
//! - [`cli`]: nginx's command-line flags (`-t`, `-T`, `-s`, ...); [`control`]: `daemon` (the serving
//!   process: bind, pid file, signal loop, in-place reload), `-s` signal sending, listen-set diffs,
//!   and, when started as root, `supervisor`: a root process that reads files, binds and opens logs,
//!   and hands config bytes + descriptors (SCM_RIGHTS) to the serving process running as `user`.
//!   Both processes give back the code pages and heap that start-up and reloads touched once
//!   (`trim`).
//!
//! # Invariants
//! - `conf` and `plan` never touch the network and need no async runtime; name resolution is injected
//!   into `plan` through [`plan::Resolve`].
//! - `runtime` never sees the AST and never parses a config string on the request path.
//! - Every Plan node keeps the [`conf::Span`] of the directive it came from: every error says FILE:LINE.
//! - A reload builds a new Plan and swaps it in only if it compiled; requests in flight finish on the
//!   Plan they started with.
//! - Bad input (config or request) is an error value, never a panic.

pub mod cli;
pub mod conf;
pub mod control;
pub mod plan;
pub mod runtime;
