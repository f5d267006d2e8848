//! The serving process's main loop around the runtime: bind, pid file, signals, reload in place,
//! log reopening, graceful and fast stop. This is what the CLI calls to serve.
//!
//! ```ignore
//! // in cli::serve:
//! let code = control::daemon::run(plan, move || cli::load(&paths, global.as_deref())
//!     .map(|l| l.plan).map_err(|f| f.error));
//! ```
//!
//! - Listeners are bound before anything else (nginx's `bind()` messages on failure, exit 1); then
//!   the signal handlers are installed, then the pid file is written: `-s` can only reach a process
//!   that is serving and will handle the signal.
//! - Each listener has its own accept loop and stop switch, so a reload can close one socket and
//!   keep the others ([`super::reload`]). Connections accepted on a socket that a reload removes are
//!   drained gracefully (in-flight requests finish; idle keepalive connections close).
//! - SIGHUP: [`super::reload::reload`] with the `loader` (re-read + compile). SIGUSR1: reopen the
//!   error log and every access log (one [`crate::runtime::log::LogWriter`] thread owns them; each
//!   `Live` gets the access-log hook from [`crate::runtime::log::hook::request_logger`]).
//!   SIGQUIT: stop accepting, drain, exit 0, bounded by `worker_shutdown_timeout`. SIGTERM/SIGINT:
//!   exit 0 at once. The pid file is removed on every exit path.
//! - Runtime errors reach the error log through [`crate::runtime::log::layer::ErrorLogLayer`].
//! - Foreground only: `daemon` / `master_process` are accepted and ignored (see [`super::supervisor`]).
//! - Threads, as nginx's processes: `worker_processes N` is N worker threads, each with its own
//!   one-thread tokio runtime that accepts and serves whole connections (no work stealing, no
//!   cross-thread wake-ups on the request path; see [`start_workers`] for the flavour). Every worker accepts on every listening socket
//!   (one dup'd descriptor each). The main thread runs a separate small runtime for signals,
//!   reloads and `resolve` re-resolution; the access log has its own writer thread.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::conf::{ConfError, Level};
use crate::plan::{ListenAddr, ListenOpts, Plan};
use crate::runtime::log::hook::request_logger;
use crate::runtime::log::layer::ErrorLogLayer;
use crate::runtime::log::{ErrorLog, LogWriter};
use crate::runtime::{server, Live};

use super::listen::ListenerSet;
use super::pid::PidFile;
use super::reload::{reload, Host, Outcome};
use super::signals::{Event, Signals};

/// nginx's `worker_shutdown_timeout` is unset by default (wait forever); so do we.
fn shutdown_limit(plan: &Plan) -> Option<Duration> {
    plan.main.worker_shutdown_timeout
}

/// One socket with its accept loop. Dropping it stops the loop (and drains its connections).
pub struct Served {
    stop: watch::Sender<bool>,
    /// The bound socket until its accept loop starts.
    pending: Mutex<Option<std::net::TcpListener>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct DaemonHost<F> {
    loader: F,
    /// The worker runtimes that run accept loops and connections.
    workers: Arc<[tokio::runtime::Handle]>,
    live: Arc<ArcSwap<Live>>,
    done: mpsc::Sender<()>,
    permits: Arc<Semaphore>,
    error_log: Arc<ArcSwap<ErrorLog>>,
    writer: Arc<LogWriter>,
    /// Re-resolves `server ... resolve` names of the current Live's groups.
    resolver_task: Option<tokio::task::JoinHandle<()>>,
}

/// How often `server ... resolve` names are looked up again. nginx follows the DNS answer's TTL;
/// the system resolver does not report it, so a short fixed period stands in for it.
const RESOLVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl<F> DaemonHost<F> {
    /// Re-resolution follows the groups of `live` (the previous Live's task stops).
    fn follow_names(&mut self, live: &Live) {
        if let Some(t) = self.resolver_task.take() {
            t.abort();
        }
        self.resolver_task = live
            .upstreams
            .spawn_resolver(Arc::new(crate::cli::SystemResolver), RESOLVE_EVERY);
    }
}

impl<F: FnMut() -> Result<Plan, ConfError>> Host for DaemonHost<F> {
    type Plan = Plan;
    type Live = Live;
    type Listener = Served;

    fn load(&mut self) -> Result<Plan, ConfError> {
        (self.loader)()
    }

    fn listen_addrs(&self, plan: &Plan) -> Vec<ListenAddr> {
        plan.http.listens.iter().map(|g| g.addr.clone()).collect()
    }

    fn bind(&mut self, addr: &ListenAddr, plan: &Plan) -> io::Result<Served> {
        let opts = plan
            .http
            .listens
            .iter()
            .find(|g| &g.addr == addr)
            .map(|g| g.opts.clone())
            .unwrap_or_default();
        let l = match addr {
            ListenAddr::Inet(a) => bind_inet(*a, &opts)?,
            ListenAddr::Unix(_) => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
        };
        Ok(served(l))
    }

    fn build(&mut self, plan: Plan, old: &Live) -> Result<Live, ConfError> {
        // Open the new error logs first: a log that cannot be opened fails the reload, as in nginx.
        let log =
            ErrorLog::open(&plan.main.error_logs).map_err(|e| ConfError::nowhere(e.to_string()))?;
        let hook =
            request_logger(&plan, &self.writer).map_err(|e| ConfError::nowhere(e.to_string()))?;
        // Certificates too: a reload whose certificate cannot be loaded keeps the old ones serving.
        let logs = any_access_log(&plan);
        let live = Live::try_new(Arc::new(plan), Some(&old.upstreams))?;
        let live = if logs {
            live.with_request_done(hook)
        } else {
            live
        };
        self.error_log.store(Arc::new(log));
        self.follow_names(&live);
        Ok(live)
    }

    fn start(&mut self, addr: &ListenAddr, listener: &Served) {
        start_accepting(
            &self.workers,
            addr,
            listener,
            &self.live,
            &self.done,
            &self.permits,
            &self.error_log,
        );
    }
}

fn served(l: std::net::TcpListener) -> Served {
    let (stop, _) = watch::channel(false);
    Served {
        stop,
        pending: Mutex::new(Some(l)),
    }
}

/// Starts one accept loop for `s` on every worker runtime, each on its own descriptor of the socket.
fn start_accepting(
    workers: &[tokio::runtime::Handle],
    addr: &ListenAddr,
    s: &Served,
    live: &Arc<ArcSwap<Live>>,
    done: &mpsc::Sender<()>,
    permits: &Arc<Semaphore>,
    error_log: &Arc<ArcSwap<ErrorLog>>,
) {
    let Some(std_l) = s.pending.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let failed = |e: &io::Error| {
        error_log.load().log(
            Level::Alert,
            None,
            &format!("listen() failed {}", super::errno_text(e)),
            None,
        )
    };
    let mut sockets = Vec::with_capacity(workers.len());
    for _ in 1..workers.len() {
        match std_l.try_clone() {
            Ok(l) => sockets.push(l),
            Err(e) => failed(&e),
        }
    }
    sockets.push(std_l);
    for (worker, std_l) in workers.iter().zip(sockets) {
        let (addr, live, stop) = (addr.clone(), live.clone(), s.stop.subscribe());
        let (done, permits, error_log) = (done.clone(), permits.clone(), error_log.clone());
        worker.spawn(async move {
            // Registered with this worker's I/O driver: from_std runs inside its runtime.
            match tokio::net::TcpListener::from_std(std_l) {
                Ok(l) => server::accept_loop(l, addr, live, stop, done, permits).await,
                Err(e) => error_log.load().log(
                    Level::Alert,
                    None,
                    &format!("listen() failed {}", super::errno_text(&e)),
                    None,
                ),
            }
        });
    }
}

/// Starts `n` worker threads, each with its own tokio runtime, kept until the process exits.
///
/// The runtime flavour is `NGINX_RS_WORKER_RUNTIME` (read once, for benchmarking): `multi`
/// (default) is tokio's scheduler with one worker thread, whose LIFO slot runs the task just woken
/// next (the request task right after its upstream read: warm caches); `current` is the
/// single-threaded scheduler, strictly FIFO. callgrind on the keepalive bench config (issue 7):
/// `multi` 59.6k / 70.3k instructions per request at 64 / 512 connections, `current` 62.1k / 76.9k.
fn start_workers(n: usize) -> io::Result<Arc<[tokio::runtime::Handle]>> {
    let current = std::env::var("NGINX_RS_WORKER_RUNTIME").is_ok_and(|v| v == "current");
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("worker-{i}");
        if current {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(name)
                .spawn(move || rt.block_on(std::future::pending::<()>()))?;
        } else {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            // Serves until the process exits; dropping it would stop the worker.
            std::mem::forget(rt);
        }
    }
    Ok(handles.into())
}

/// Whether any configuration object of `plan` writes an access log. Without one, no completion
/// hook is installed, so responses are not wrapped to be logged (`access_log off` everywhere costs
/// nothing per request).
fn any_access_log(plan: &Plan) -> bool {
    use crate::plan::{LocConf, Location, RewriteOp};
    fn ops(list: &[RewriteOp]) -> bool {
        list.iter().any(|op| match op {
            RewriteOp::If {
                ops: inner, conf, ..
            } => conf.as_deref().is_some_and(conf_logs) || ops(inner),
            _ => false,
        })
    }
    fn conf_logs(c: &LocConf) -> bool {
        !c.access_logs.is_empty() || ops(&c.rewrites)
    }
    fn location(l: &Location) -> bool {
        conf_logs(&l.conf) || l.children.iter().any(|c| location(c))
    }
    plan.http.servers.iter().any(|s| {
        conf_logs(&s.conf)
            || ops(&s.rewrites)
            || s.locations.iter().chain(&s.named).any(|l| location(l))
    })
}

/// Binds like `runtime::bind` (SO_REUSEADDR, ipv6only on by default, backlog 511, non-blocking).
fn bind_inet(addr: SocketAddr, opts: &ListenOpts) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if opts.reuseport {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(opts.ipv6only.unwrap_or(true))?;
    }
    s.bind(&addr.into())?;
    s.listen(opts.backlog.unwrap_or(511))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn emerg(msg: &str) -> i32 {
    eprintln!("nginx-rs: [emerg] {msg}");
    1
}

/// Serves `plan` until stopped; returns the exit code. `loader` re-reads and compiles the
/// configuration on SIGHUP.
pub fn run<F>(plan: Plan, loader: F) -> i32
where
    F: FnMut() -> Result<Plan, ConfError> + Send + 'static,
{
    let error_log = match ErrorLog::open(&plan.main.error_logs) {
        Ok(l) => Arc::new(ArcSwap::from_pointee(l)),
        Err(e) => return emerg(&e.to_string()),
    };
    // Route the runtime's tracing events to the error log. Another subscriber already set (tests,
    // embedding) wins; then the runtime's lines go there instead.
    {
        use tracing_subscriber::layer::SubscriberExt;
        let sub = tracing_subscriber::registry().with(ErrorLogLayer::new(error_log.clone(), true));
        let _ = tracing::subscriber::set_global_default(sub);
    }
    let threads = plan.main.worker_processes.unwrap_or_else(cores).max(1);
    // The main thread's runtime: signals, reloads, re-resolution (its blocking pool). Requests are
    // served on the worker runtimes only.
    let (rt, workers) = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| start_workers(threads).map(|w| (rt, w)))
    {
        Ok((rt, workers)) => (rt, workers),
        Err(e) => {
            return emerg(&format!(
                "cannot start the runtime {}",
                super::errno_text(&e)
            ))
        }
    };
    let permits = Arc::new(Semaphore::new(
        plan.main.worker_connections.max(1).saturating_mul(threads),
    ));
    // Bind everything first: nothing is served, and no pid file written, unless all binds succeed.
    let mut initial = Vec::new();
    for g in &plan.http.listens {
        match &g.addr {
            ListenAddr::Inet(a) => match bind_inet(*a, &g.opts) {
                Ok(l) => initial.push((g.addr.clone(), served(l))),
                Err(error) => {
                    return emerg(
                        &super::listen::BindError {
                            addr: g.addr.clone(),
                            error,
                        }
                        .to_string(),
                    )
                }
            },
            ListenAddr::Unix(p) => {
                return emerg(&format!(
                    "bind() to unix:{} failed (97: Address family not supported by protocol)",
                    p.display()
                ))
            }
        }
    }
    let pid_path = plan.main.pid.clone();
    let limit = shutdown_limit(&plan);
    let writer = match LogWriter::new() {
        Ok(w) => Arc::new(w),
        Err(e) => {
            return emerg(&format!(
                "cannot start the log writer {}",
                super::errno_text(&e)
            ))
        }
    };
    let hook = match request_logger(&plan, &writer) {
        Ok(h) => h,
        Err(e) => return emerg(&e.to_string()),
    };
    let logs = any_access_log(&plan);
    let live = Live::new(Arc::new(plan), None);
    let live = Arc::new(ArcSwap::from_pointee(if logs {
        live.with_request_done(hook)
    } else {
        live
    }));
    let access_logs = Some(Arc::clone(&writer));

    rt.block_on(async move {
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => return emerg(&format!("sigaction() failed {}", super::errno_text(&e))),
        };
        let _pid = match PidFile::create(&pid_path) {
            Ok(p) => p,
            Err(e) => return emerg(&e.to_string()),
        };
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut host = DaemonHost {
            loader,
            workers,
            live: live.clone(),
            done: done_tx,
            permits,
            error_log: error_log.clone(),
            writer,
            resolver_task: None,
        };
        host.follow_names(&live.load());
        let mut set = ListenerSet::new(initial);
        for (addr, s) in set.iter() {
            host.start(addr, s);
        }
        loop {
            match signals.recv().await {
                Event::Reload => {
                    let log = error_log.load_full();
                    // The main thread serves no requests: compiling here blocks no client.
                    let outcome = reload(&mut host, &live, &mut set, &log);
                    if let Outcome::Reloaded { removed, .. } = outcome {
                        drop(removed);
                    }
                }
                Event::Reopen => {
                    let log = error_log.load_full();
                    log.log(
                        Level::Notice,
                        None,
                        "signal 10 (SIGUSR1) received, reopening logs",
                        None,
                    );
                    let mut failures: Vec<String> =
                        log.reopen().into_iter().map(|e| e.to_string()).collect();
                    if let Some(w) = &access_logs {
                        failures.extend(w.reopen().into_iter().map(|e| e.to_string()));
                    }
                    for f in failures {
                        log.log(Level::Emerg, None, &f, None);
                    }
                }
                Event::GracefulStop => {
                    error_log.load().log(
                        Level::Notice,
                        None,
                        "signal 3 (SIGQUIT) received, shutting down",
                        None,
                    );
                    // Stop every accept loop; connections see the switch and drain.
                    drop(set);
                    drop(host);
                    let drained = async { while done_rx.recv().await.is_some() {} };
                    match limit {
                        Some(t) => {
                            let _ = tokio::time::timeout(t, drained).await;
                        }
                        None => drained.await,
                    }
                    if let Some(w) = &access_logs {
                        w.flush();
                    }
                    return 0;
                }
                Event::FastStop => {
                    error_log.load().log(Level::Notice, None, "exiting", None);
                    if let Some(w) = &access_logs {
                        w.flush();
                    }
                    return 0;
                }
            }
        }
    })
}
