//! The serving side: listeners, router, upstream balancers and pools, proxy handler, logs.
//!
//! Works only from a compiled `Plan`; never sees the AST and never parses config strings on the
//! request path.
//!
//! # API for the CLI and ops work
//! ```ignore
//! let live = Arc::new(ArcSwap::from_pointee(Live::new(plan.clone(), None)));
//! let listeners = runtime::bind(&plan)?;                // nginx's bind() messages on failure
//! let (tx, rx) = tokio::sync::watch::channel(false);
//! tokio::spawn(runtime::serve(listeners, live.clone(), rx)); // inside a tokio runtime
//! live.store(Arc::new(Live::new(new_plan, Some(&live.load().upstreams))));  // reload
//! tx.send(true);                                         // graceful stop: stop accepting,
//!                                                        // finish in-flight, close idle keepalive
//! ```
//! or simply `runtime::run(plan)` (builds the tokio runtime with `worker_processes` threads, binds,
//! serves until SIGINT/SIGTERM).
//!
//! - [`Live`]: one loaded configuration: the Plan, the upstream run-time state, and the routing tables
//!   built from the Plan. Every request loads the current `Live` from the `ArcSwap` once and keeps
//!   it, so a reload is one `store` and requests in flight finish on the `Live` they started with.
//! - [`bind`] returns plain std listeners (non-blocking, `SOCK_STREAM`), so the supervisor can pass
//!   them on (SCM_RIGHTS) or keep the ones that survive a reload.
//! - `worker_connections` caps open client connections (per worker thread × threads).
//! - [`Live::with_request_done`] installs the per-request completion hook (the access log):
//!   it runs with the final [`ctx::RequestCtx`] (which implements [`log::VarSource`]).
//! - [`server::accept_loop`] is the per-listener accept loop for callers managing listeners
//!   themselves (reload keeps, adds, closes sockets one by one).
//!
//! # Modules
//! [`server`] (accept loop, hyper connection, `send_timeout`), [`guard`] (request-head checks
//! before hyper: framing conflicts, versions, sizes, HTTP/0.9; records raw header names and a
//! `#fragment`), [`request`] (head checks, server choice, `$uri`
//! normalisation, `Connection`), [`router`] (server_name and location matching),
//! [`ctx`] (variables), [`proxy`] (upstream request, retries, response), [`reqbody`] (buffered and
//! streamed bodies, temp-file spill), [`finish`] (request-done hook), [`errors`] (pages and
//! error-log lines), [`upstream`] (balancers, pools, the HTTP/1 client `h1`), [`status`] (`stub_status` and `metrics`
//! counters and pages; one per process).
//! The phases around the content handler (issue 6) are [`edge`]: [`realip`], [`rewrite`],
//! [`access`], [`map`] (lazy `map` variables), [`redirect`] (`proxy_redirect`), [`respond`]
//! (`return`, `Location`, `add_header`).
//! Before HTTP: [`handshake`] (PROXY protocol, TLS handshake, HTTP/2 choice), [`tls`] (rustls
//! configurations from the Plan), [`proxy_protocol`].

pub mod access;
pub mod body;
pub mod client_tcp;
pub mod ctx;
pub mod dormant;
pub mod edge;
pub mod errors;
pub mod finish;
pub mod guard;
pub mod h1;
pub mod handshake;
pub mod log;
pub mod map;
pub mod park;
pub mod proxy;
pub mod proxy_protocol;
pub mod realip;
pub mod redirect;
pub mod reqbody;
pub mod request;
pub mod respond;
pub mod rewrite;
pub mod router;
pub mod server;
pub mod status;
pub mod tls;
pub mod upstream;
pub mod worker;
mod wrap;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::plan::{ListenAddr, Plan};

/// Called once per finished request: after the last response byte went out, or when the client
/// went away. The access log hangs here (`ctx.loc_conf` has the `access_log` list; `ctx` implements
/// [`log::VarSource`]; `$status`, `$body_bytes_sent`, `$bytes_sent`, `$request_time` are final).
pub type OnRequestDone = Arc<dyn Fn(&ctx::RequestCtx) + Send + Sync>;

/// One loaded configuration, swapped atomically on reload.
pub struct Live {
    pub plan: Arc<Plan>,
    pub upstreams: Arc<upstream::Upstreams>,
    /// server_name tables per listen address, built from `plan`.
    pub router: Arc<router::Router>,
    /// Certificates and rustls configurations (`ssl_*`), loaded from the files `plan` names.
    pub tls: Arc<tls::TlsSet>,
    /// The per-request completion hook (access log); `None` costs nothing per request.
    pub on_done: Option<OnRequestDone>,
}

impl Live {
    /// Build the run-time state for `plan`; `previous` carries upstream state (peer health, pools)
    /// over for groups that did not change.
    pub fn new(plan: Arc<Plan>, previous: Option<&upstream::Upstreams>) -> Live {
        // `try_new` is the checked path (start, reload); here a certificate that cannot be loaded
        // leaves its server without TLS (its handshakes fail) rather than stopping everything.
        let tls = match tls::TlsSet::load(&plan) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{}", e.message);
                tls::TlsSet::default()
            }
        };
        Live::with_tls(plan, previous, tls)
    }

    fn with_tls(plan: Arc<Plan>, previous: Option<&upstream::Upstreams>, tls: tls::TlsSet) -> Live {
        let upstreams = Arc::new(upstream::Upstreams::new(&plan, previous));
        let router = Arc::new(router::Router::new(&plan));
        Live {
            plan,
            upstreams,
            router,
            tls: Arc::new(tls),
            on_done: None,
        }
    }

    /// As [`Live::new`], but certificates that cannot be loaded are an error (nginx's
    /// `cannot load certificate "..."`): a reload that fails here keeps the old `Live`.
    pub fn try_new(
        plan: Arc<Plan>,
        previous: Option<&upstream::Upstreams>,
    ) -> Result<Live, crate::conf::ConfError> {
        let tls = tls::TlsSet::load(&plan)?;
        Ok(Live::with_tls(plan, previous, tls))
    }

    /// The same, calling `hook` for every finished request.
    pub fn with_request_done(mut self, hook: OnRequestDone) -> Live {
        self.on_done = Some(hook);
        self
    }
}

/// Bound, listening sockets, one per `listen` address of the Plan.
pub struct Listeners {
    pub sockets: Vec<(ListenAddr, std::net::TcpListener)>,
}

/// A failed `bind()`/`listen()`, displayed as nginx says it:
/// `bind() to 0.0.0.0:80 failed (98: Address already in use)`.
#[derive(Debug)]
pub struct BindError {
    pub call: &'static str,
    pub addr: String,
    pub error: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}() to {} failed ({})",
            self.call,
            self.addr,
            proxy::os_error(&self.error)
        )
    }
}

impl std::error::Error for BindError {}

/// Bind every ListenGroup of `plan` (IPv4, IPv6 with `ipv6only` on by default as nginx, `reuseport`,
/// `backlog`, default 511 as nginx on Linux).
pub fn bind(plan: &Plan) -> Result<Listeners, BindError> {
    let mut sockets = Vec::new();
    for lg in &plan.http.listens {
        match &lg.addr {
            ListenAddr::Inet(addr) => {
                let l = bind_inet(*addr, &lg.opts)?;
                sockets.push((lg.addr.clone(), l));
            }
            ListenAddr::Unix(path) => {
                return Err(BindError {
                    call: "bind",
                    addr: format!("unix:{}", path.display()),
                    error: io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
                })
            }
        }
    }
    Ok(Listeners { sockets })
}

fn bind_inet(
    addr: SocketAddr,
    opts: &crate::plan::ListenOpts,
) -> Result<std::net::TcpListener, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |call, error| BindError {
        call,
        addr: addr.to_string(),
        error,
    };
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| err("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| err("setsockopt", e))?;
    if opts.reuseport {
        s.set_reuse_port(true).map_err(|e| err("setsockopt", e))?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(opts.ipv6only.unwrap_or(true))
            .map_err(|e| err("setsockopt", e))?;
    }
    s.bind(&addr.into()).map_err(|e| err("bind", e))?;
    s.listen(opts.backlog.unwrap_or(511))
        .map_err(|e| err("listen", e))?;
    s.set_nonblocking(true).map_err(|e| err("ioctl", e))?;
    Ok(s.into())
}

/// Serve `listeners` with the current `live` until `shutdown` becomes true, then drain: stop
/// accepting, let requests in flight finish, close idle keepalive connections, and return when the
/// last connection is gone. Must run inside a tokio runtime.
pub async fn serve(
    listeners: Listeners,
    live: Arc<ArcSwap<Live>>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let main = &live.load().plan.main;
    let threads = main.worker_processes.unwrap_or_else(cores).max(1);
    let permits = Arc::new(Semaphore::new(
        main.worker_connections.max(1).saturating_mul(threads),
    ));
    let mut accepts = Vec::new();
    for (addr, std_listener) in listeners.sockets {
        let l = tokio::net::TcpListener::from_std(std_listener)?;
        accepts.push(tokio::spawn(server::accept_loop(
            l,
            addr,
            live.clone(),
            shutdown.clone(),
            done_tx.clone(),
            permits.clone(),
        )));
    }
    for a in accepts {
        let _ = a.await;
    }
    drop(done_tx);
    // Every connection task holds a sender; `None` means all of them finished.
    let _ = done_rx.recv().await;
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Why [`run`] stopped.
#[derive(Debug)]
pub enum RunError {
    Bind(BindError),
    Io(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Bind(e) => e.fmt(f),
            RunError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

/// Blocking helper for the CLI: a tokio runtime with `worker_processes` threads (`auto` = cores),
/// bind, serve until SIGINT or SIGTERM (then drain gracefully).
pub fn run(plan: Arc<Plan>) -> Result<(), RunError> {
    let threads = plan.main.worker_processes.unwrap_or_else(cores).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        // Access-log lines are written when a worker has nothing left to run (log::batch).
        .on_thread_park(log::batch::flush_thread)
        .enable_all()
        .build()
        .map_err(RunError::Io)?;
    let listeners = bind(&plan).map_err(RunError::Bind)?;
    rt.block_on(async move {
        let live =
            Live::try_new(plan, None).map_err(|e| RunError::Io(io::Error::other(e.message)))?;
        let live = Arc::new(ArcSwap::from_pointee(live));
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve(listeners, live, rx));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(RunError::Io)?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
        match server.await {
            Ok(r) => r.map_err(RunError::Io),
            Err(e) => Err(RunError::Io(io::Error::other(e))),
        }
    })
}
