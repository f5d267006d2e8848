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
//! - Signal notices are nginx's, with the sender (`signal 1 (SIGHUP) received from 5678,
//!   reconfiguring`), then `reconfiguring` / `reopening logs` / `gracefully shutting down`,
//!   `exiting`, `exit`.
//! - [`run_supervised`] is the same loop as the unprivileged half of the supervisor design: the
//!   sockets come from the supervisor, there is no pid file, and reloads / reopens arrive as
//!   bundles on the [`Link`] instead of signals (the Plan is compiled from the bundle's bytes).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::conf::{ConfError, Level};
use crate::plan::{ListenAddr, ListenOpts, Plan};
use crate::runtime::log::errorlog;
use crate::runtime::log::hook::request_logger;
use crate::runtime::log::layer::ErrorLogLayer;
use crate::runtime::log::{ErrorLog, LogWriter};
use crate::runtime::{server, Live};

use crate::conf::include::{with_files, FileMap};

use super::link::{send_ack, Incoming, Link};
use super::listen::ListenerSet;
use super::pid::PidFile;
use super::reload::{reload, Host, Outcome};
use super::signals::{Event, Signals};
use super::supervisor::Kind;

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
    /// Supervised: sockets the supervisor bound for this reload, taken by `bind`.
    handed: Vec<(ListenAddr, TcpListener)>,
}

/// Runs the blocking `f` (a reload compiles) from the signal loop: on a multi-threaded runtime the
/// thread's other tasks move elsewhere meanwhile (`block_in_place`, which a current-thread runtime
/// does not allow; there `f` simply runs).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs `f` reading files from `files` when set (supervised: the bundle's bytes), else from disk.
fn reading<R>(files: &Option<Arc<FileMap>>, f: impl FnOnce() -> R) -> R {
    match files {
        Some(m) => with_files(m.clone(), f),
        None => f(),
    }
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
        if let Some(i) = self.handed.iter().position(|(a, _)| a == addr) {
            return Ok(served(self.handed.swap_remove(i).1));
        }
        let l = match addr {
            ListenAddr::Inet(a) => bind_inet(*a, &opts)?,
            ListenAddr::Unix(_) => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
        };
        Ok(served(l))
    }

    fn build(&mut self, plan: Plan, old: &Live) -> Result<Live, ConfError> {
        // Server- and location-level error logs: a file that cannot be opened fails the reload.
        open_level_logs(&plan).map_err(|e| ConfError::nowhere(e.to_string()))?;
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

/// Tasks a worker runs between two polls of the IO driver (tokio's default is 61;
/// `NGINX_RS_EVENT_INTERVAL`, read once, overrides it for benchmarking). Every poll is an
/// `epoll_wait` plus a round of wake-ups; under load the run queue is never empty, and at 61 the
/// connections whose events arrive early are served late behind the fresh wake-ups of each poll.
/// bench/run.sh, keepalive, one run of 2 pairs each (issue 7): p99 at 512 connections 3.27x
/// nginx's with 61, 1.27x with 1024; requests per CPU-second the same (0.92x both). When the
/// queue empties the driver is polled at once anyway, so a light load sees no delay.
const EVENT_INTERVAL: u32 = 1024;

/// Starts `n` worker threads, each with its own tokio runtime, kept until the process exits.
///
/// The runtime flavour is `NGINX_RS_WORKER_RUNTIME` (read once, for benchmarking): `multi`
/// (default) is tokio's scheduler with one worker thread, whose LIFO slot runs the task just woken
/// next (the request task right after its upstream read: warm caches); `current` is the
/// single-threaded scheduler, strictly FIFO. callgrind on the keepalive bench config (issue 7):
/// `multi` 59.6k / 70.3k instructions per request at 64 / 512 connections, `current` 62.1k / 76.9k.
fn start_workers(n: usize) -> io::Result<Arc<[tokio::runtime::Handle]>> {
    let current = std::env::var("NGINX_RS_WORKER_RUNTIME").is_ok_and(|v| v == "current");
    let event_interval: u32 = std::env::var("NGINX_RS_EVENT_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(EVENT_INTERVAL);
    let mut handles = Vec::with_capacity(n);
    // Numbered before any upstream state exists: the keepalive pools keep a shard per worker.
    crate::runtime::worker::set_count(n);
    for i in 0..n {
        let name = format!("worker-{i}");
        if current {
            let rt = tokio::runtime::Builder::new_current_thread()
                .event_interval(event_interval)
                // Access-log lines are written when the worker has nothing left to run.
                .on_thread_park(crate::runtime::log::batch::flush_thread)
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new().name(name).spawn(move || {
                crate::runtime::worker::enter(i);
                rt.block_on(std::future::pending::<()>())
            })?;
        } else {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                // Also the blocking pool's threads: harmless, they touch no per-worker state.
                .on_thread_start(move || crate::runtime::worker::enter(i))
                .event_interval(event_interval)
                .on_thread_park(crate::runtime::log::batch::flush_thread)
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
pub(crate) fn bind_inet(addr: SocketAddr, opts: &ListenOpts) -> io::Result<std::net::TcpListener> {
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

/// Opens the server- and location-level `error_log`s of `plan` (a failure fails start or reload).
fn open_level_logs(plan: &Plan) -> Result<(), crate::runtime::log::OpenError> {
    let mut result = Ok(());
    super::supervisor::each_conf(plan, &mut |c| {
        if result.is_ok() {
            result = errorlog::open_level_logs(&c.error_logs);
        }
    });
    result
}

/// Start-up and reloads run code and fill heap the request path does not need again
/// ([`super::trim`]).
pub(crate) fn release_startup_memory() {
    let bytes = super::trim::release();
    tracing::debug!(bytes, "released start-up code pages");
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

/// Where the serving loop's events come from: signals and, supervised, the supervisor's bundles.
struct Inbox {
    signals: Signals,
    /// Supervised: the socketpair (for answers) and the bundles read from it (`None` once the
    /// supervisor is gone).
    link: Option<(std::os::unix::net::UnixStream, Option<BundleRx>)>,
}

type BundleRx = mpsc::UnboundedReceiver<Incoming>;

impl Inbox {
    /// The next event, its notice logged. Supervised, reloads and reopens come as bundles (the
    /// supervisor re-reads as root), so SIGHUP/SIGUSR1 sent to this process are ignored, and a
    /// closed link (supervisor gone) is a graceful stop.
    async fn next(&mut self, log: &ErrorLog) -> (Event, Option<Incoming>) {
        loop {
            let bundles = self.link.as_mut().and_then(|(_, rx)| rx.as_mut());
            let next_bundle = async {
                match bundles {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.signals.recv_from() => {
                    let supervised = self.link.is_some();
                    if supervised && matches!(r.event, Event::Reload | Event::Reopen) {
                        continue;
                    }
                    // A stop forwarded by the supervisor was logged there already.
                    // SAFETY: getppid has no preconditions and cannot fail.
                    if !supervised || r.from != Some(unsafe { libc::getppid() }) {
                        log.log(Level::Notice, None, &r.notice(), None);
                    }
                    return (r.event, None);
                }
                b = next_bundle => {
                    return match b {
                        Some(inc) if inc.bundle.kind == Kind::Reopen => (Event::Reopen, Some(inc)),
                        Some(inc) => (Event::Reload, Some(inc)),
                        None => {
                            if let Some((_, rx)) = &mut self.link {
                                *rx = None;
                            }
                            (Event::GracefulStop, None)
                        }
                    };
                }
            }
        }
    }

    /// Supervised: answers a configuration bundle with the addresses now served.
    fn ack(&mut self, serving: Vec<ListenAddr>) -> io::Result<()> {
        match &self.link {
            Some((s, _)) => send_ack(s, serving),
            None => Ok(()),
        }
    }
}

/// Serves `plan` until stopped; returns the exit code. `loader` re-reads and compiles the
/// configuration on SIGHUP.
pub fn run<F>(plan: Plan, loader: F) -> i32
where
    F: FnMut() -> Result<Plan, ConfError> + Send + 'static,
{
    serve(plan, loader, None)
}

/// The serving process under the privileged supervisor ([`super::supervisor`]): `first` is the
/// start bundle (its sockets and log descriptors), `plan` was compiled from its bytes, `loader`
/// compiles again on each new bundle (called with that bundle's files installed).
pub fn run_supervised<F>(plan: Plan, loader: F, first: Incoming, link: Link) -> i32
where
    F: FnMut() -> Result<Plan, ConfError> + Send + 'static,
{
    serve(plan, loader, Some((first, link)))
}

/// The bundle's configuration files as the map the loader reads from.
pub fn file_map(incoming: &Incoming) -> Arc<FileMap> {
    Arc::new(incoming.bundle.files.iter().cloned().collect())
}

fn serve<F>(plan: Plan, loader: F, supervised: Option<(Incoming, Link)>) -> i32
where
    F: FnMut() -> Result<Plan, ConfError> + Send + 'static,
{
    let (mut handed, files, link) = match supervised {
        Some((first, link)) => {
            let files = file_map(&first);
            super::logfds::install(first.logs);
            (first.listens, Some(files), Some(link))
        }
        None => (Vec::new(), None, None),
    };
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
        if initial.iter().any(|(a, _)| a == &g.addr) {
            continue;
        }
        if let Some(i) = handed.iter().position(|(a, _)| a == &g.addr) {
            initial.push((g.addr.clone(), served(handed.swap_remove(i).1)));
            continue;
        }
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
    if let Err(e) = open_level_logs(&plan) {
        return emerg(&e.to_string());
    }
    let logs = any_access_log(&plan);
    let live = reading(&files, || Live::new(Arc::new(plan), None));
    let live = Arc::new(ArcSwap::from_pointee(if logs {
        live.with_request_done(hook)
    } else {
        live
    }));
    let access_logs = Some(Arc::clone(&writer));

    rt.block_on(async move {
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => return emerg(&format!("sigaction() failed {}", super::errno_text(&e))),
        };
        // Supervised, the pid file is the supervisor's (signals go to it).
        let _pid = match &link {
            Some(_) => None,
            None => match PidFile::create(&pid_path) {
                Ok(p) => Some(p),
                Err(e) => return emerg(&e.to_string()),
            },
        };
        let mut inbox = Inbox {
            signals,
            link: link.map(|l| (l.stream, Some(l.rx))),
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
            handed: Vec::new(),
        };
        host.follow_names(&live.load());
        let mut set = ListenerSet::new(initial);
        for (addr, s) in set.iter() {
            host.start(addr, s);
        }
        // Supervised: tell the supervisor we are serving (it writes the pid file then).
        if let Err(e) = inbox.ack(set.addrs()) {
            return emerg(&format!("supervisor link failed {}", super::errno_text(&e)));
        }
        release_startup_memory();
        loop {
            let (event, incoming) = inbox.next(&error_log.load()).await;
            match event {
                Event::Reload => {
                    let log = error_log.load_full();
                    // Supervised, every file (configuration, certificates) is read from the
                    // bundle: `reading` installs its bytes for the whole reload.
                    let mut files = None;
                    if let Some(inc) = incoming {
                        files = Some(file_map(&inc));
                        host.handed = inc.listens;
                        super::logfds::install(inc.logs);
                    } else {
                        log.log(Level::Notice, None, "reconfiguring", None);
                    }
                    let outcome =
                        blocking(|| reading(&files, || reload(&mut host, &live, &mut set, &log)));
                    // Sockets handed for a reload that failed are closed here.
                    host.handed.clear();
                    if let Outcome::Reloaded { removed, .. } = outcome {
                        drop(removed);
                    }
                    // A failed answer means the supervisor is gone: the next event is the stop.
                    let _ = inbox.ack(set.addrs());
                    release_startup_memory();
                }
                Event::Reopen => {
                    let log = error_log.load_full();
                    log.log(Level::Notice, None, "reopening logs", None);
                    if let Some(inc) = incoming {
                        super::logfds::install(inc.logs);
                    }
                    let mut failures: Vec<String> = log
                        .reopen()
                        .into_iter()
                        .chain(errorlog::reopen_level_logs())
                        .map(|e| e.to_string())
                        .collect();
                    if let Some(w) = &access_logs {
                        failures.extend(w.reopen().into_iter().map(|e| e.to_string()));
                    }
                    for f in failures {
                        log.log(Level::Emerg, None, &f, None);
                    }
                }
                Event::GracefulStop => {
                    error_log
                        .load()
                        .log(Level::Notice, None, "gracefully shutting down", None);
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
                    error_log.load().log(Level::Notice, None, "exit", None);
                    return 0;
                }
                Event::FastStop => {
                    error_log.load().log(Level::Notice, None, "exiting", None);
                    if let Some(w) = &access_logs {
                        w.flush();
                    }
                    error_log.load().log(Level::Notice, None, "exit", None);
                    return 0;
                }
            }
        }
    })
}
