//! Privileges without breaking reload: the design, and the supervisor's message format.
//!
//! # The problem
//! Started as root, nginx-rs must handle requests as `user` (default `nobody`). A reload must still work
//! when the configuration and TLS keys are readable only by root (0600 in a 0700 directory) and when
//! the new configuration adds a port below 1024. A single process that dropped to `nobody` can do
//! neither. nginx keeps a root master and starts new workers, which closes idle keepalive connections
//! on every reload; nginx-rs swaps the Plan in place instead, so nothing is closed.
//!
//! # The design: a small privileged supervisor
//! ```text
//!   nginx-rs (root, pid in the pid file)          nginx-rs serve (user, e.g. nobody)
//!   ┌──────────────────────────────┐  socketpair ┌──────────────────────────────────┐
//!   │ signals, pid file, reads     │◀──────────▶│ Live in ArcSwap, listeners,       │
//!   │ files, `-t` check, bind()    │ SCM_RIGHTS │ requests, logs (fds from root)    │
//!   └──────────────────────────────┘             └──────────────────────────────────┘
//! ```
//! 1. Start (root): read and compile the configuration, bind every `listen`, open log files (they may
//!    live in root-only directories), then re-exec this binary (`/proc/self/exe`) as the serving
//!    process: `nginx-rs --supervised FD USER UID GID -- ARGS` ([`SERVE_FLAG`]), with one end of a
//!    `socketpair` as FD. Its first act is to drop to `user`/`group` ([`super::privs`]:
//!    initgroups, setgid, setuid, in that order, then `PR_SET_NO_NEW_PRIVS`); only then does it
//!    read the first [`Bundle`]: every configuration and certificate file's bytes, the listen
//!    addresses, the log paths, and the matching descriptors (SCM_RIGHTS, [`super::fdpass`],
//!    paired up by [`super::link`]). It answers each configuration bundle with the addresses it
//!    serves ([`Kind::Ack`]); the supervisor writes the pid file after the first answer.
//! 2. The supervisor does nothing else: it handles no traffic and parses no requests. Its whole
//!    attack surface is its signals and the socketpair, on which it reads only the child's answers
//!    (a list of addresses).
//! 3. SIGHUP reaches the supervisor (its pid is in the pid file; systemd's `ExecReload` sends to
//!    `$MAINPID`). It re-reads every file as root and runs the full check (`plan::compile`). On
//!    failure it logs the `[emerg]` line and stops there: the serving process never notices. On
//!    success it binds only the *new* listen addresses (it remembers what it already handed over),
//!    and sends a new Bundle with the bytes and the new descriptors.
//! 4. The serving process compiles the Plan from the bytes (same compiler, reading from the bundle
//!    instead of the file system: [`crate::conf::include::with_files`]), builds the new `Live`,
//!    `store`s it, keeps the sockets it already had for unchanged addresses, starts accepting on the
//!    new ones and closes the removed ones ([`super::reload`] with the daemon's `Host`, whose `load`
//!    reads the bundle and whose `bind` takes the received descriptor). Log files are opened through
//!    the handed descriptors ([`super::logfds`]). No connection is closed; in-flight requests
//!    finish on the old `Live`.
//! 5. SIGUSR1: the supervisor reopens the log files as root and passes the new descriptors; SIGQUIT /
//!    SIGTERM are forwarded to the serving process; the supervisor exits with the child's status and
//!    removes the pid file. If the serving process dies unexpectedly the supervisor exits non-zero
//!    (systemd restarts the unit) rather than silently respawning.
//!
//! When not started as root there is nothing to protect: one process does everything and reloads by
//! reading the files itself (the same [`super::reload`] path). `daemon` and `master_process` are
//! accepted and ignored: nginx-rs always stays in the foreground, which is what systemd (`Type=exec`)
//! and containers want; the supervisor split is decided by privileges, not by `master_process`.
//!
//! # Status
//! Implemented and used whenever nginx-rs serves as root ([`run`] here; the serving half is
//! [`super::daemon::run_supervised`], entered from `cli` on [`SERVE_FLAG`]). Tested as root in
//! `tests/control_privdrop.rs`. Known limits: a configuration bundle and its answer are one
//! blocking exchange (the supervisor waits up to two minutes for the answer and handles no signal
//! meanwhile); Unix-domain `listen` sockets are refused as in single-process mode; `access_log`
//! paths with variables are opened per request by the serving process, as `user`.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conf::{ConfError, Level};
use crate::plan::{ListenAddr, LocConf, Location, Plan, RewriteOp};
use crate::runtime::log::writer::open_log_file;
use crate::runtime::log::{ErrorLog, OpenError};

use super::link;
use super::listen::{diff, BindError};
use super::pid::PidFile;
use super::privs::{self, Creds};
use super::reload::conf_error_message;
use super::signals::{Event, Signals};

/// The hidden first argument that makes `nginx-rs` the serving process of a supervisor:
/// `nginx-rs --supervised FD USER UID GID -- ORIGINAL-ARGS...`.
pub const SERVE_FLAG: &str = "--supervised";

/// A configuration that passed the full check as root, with every configuration file's bytes.
pub struct Checked {
    pub plan: Plan,
    /// The main file first, then includes (what `conf` read).
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// What a [`Bundle`] asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Start or reload: compile `files`, add `listens`, use `logs`.
    #[default]
    Config,
    /// SIGUSR1: reopen the logs with the freshly opened `logs`.
    Reopen,
    /// The serving process's answer to `Config`: `listens` is the set it serves now.
    Ack,
}

/// What the supervisor hands to the serving process on start and on each reload. The descriptors
/// travel beside it (SCM_RIGHTS): `listens[i]` pairs with descriptor `i`, then `logs[j]` with
/// descriptor `listens.len() + j`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bundle {
    pub kind: Kind,
    /// Every configuration file read (main file first), with its bytes.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Addresses whose sockets are attached (only the new ones on reload).
    pub listens: Vec<ListenAddr>,
    /// Log files whose descriptors are attached.
    pub logs: Vec<PathBuf>,
}

impl Bundle {
    /// Length-prefixed binary encoding (all integers u32 little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![match self.kind {
            Kind::Config => 0,
            Kind::Reopen => 1,
            Kind::Ack => 2,
        }];
        put_u32(&mut out, self.files.len());
        for (p, bytes) in &self.files {
            put_bytes(&mut out, p.as_os_str().as_encoded_bytes());
            put_bytes(&mut out, bytes);
        }
        put_u32(&mut out, self.listens.len());
        for a in &self.listens {
            match a {
                ListenAddr::Inet(s) => {
                    out.push(0);
                    put_bytes(&mut out, s.to_string().as_bytes());
                }
                ListenAddr::Unix(p) => {
                    out.push(1);
                    put_bytes(&mut out, p.as_os_str().as_encoded_bytes());
                }
            }
        }
        put_u32(&mut out, self.logs.len());
        for p in &self.logs {
            put_bytes(&mut out, p.as_os_str().as_encoded_bytes());
        }
        out
    }

    pub fn decode(mut buf: &[u8]) -> io::Result<Bundle> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed bundle");
        let r = &mut buf;
        let (&kind, rest) = r.split_first().ok_or_else(bad)?;
        *r = rest;
        let mut b = Bundle {
            kind: match kind {
                0 => Kind::Config,
                1 => Kind::Reopen,
                2 => Kind::Ack,
                _ => return Err(bad()),
            },
            ..Bundle::default()
        };
        for _ in 0..get_u32(r)? {
            let p = path(get_bytes(r)?);
            b.files.push((p, get_bytes(r)?.to_vec()));
        }
        for _ in 0..get_u32(r)? {
            let (&tag, rest) = r.split_first().ok_or_else(bad)?;
            *r = rest;
            let v = get_bytes(r)?;
            b.listens.push(match tag {
                0 => ListenAddr::Inet(
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(bad)?,
                ),
                1 => ListenAddr::Unix(path(v)),
                _ => return Err(bad()),
            });
        }
        for _ in 0..get_u32(r)? {
            b.logs.push(path(get_bytes(r)?));
        }
        if !r.is_empty() {
            return Err(bad());
        }
        Ok(b)
    }

    /// The bytes of `file`, for a compiler reading from the bundle instead of the file system.
    pub fn file(&self, file: &Path) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == file)
            .map(|(_, b)| b.as_slice())
    }
}

fn path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}

fn get_u32(r: &mut &[u8]) -> io::Result<u32> {
    if r.len() < 4 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (h, t) = r.split_at(4);
    *r = t;
    Ok(u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
}

fn get_bytes<'a>(r: &mut &'a [u8]) -> io::Result<&'a [u8]> {
    let n = get_u32(r)? as usize;
    if r.len() < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (h, t) = r.split_at(n);
    *r = t;
    Ok(h)
}

/// Every `LocConf` of `plan`: servers, locations (nested and named) and `if` blocks.
pub fn each_conf(plan: &Plan, f: &mut dyn FnMut(&std::sync::Arc<LocConf>)) {
    fn ops(o: &[RewriteOp], f: &mut dyn FnMut(&std::sync::Arc<LocConf>)) {
        for op in o {
            if let RewriteOp::If {
                ops: inner, conf, ..
            } = op
            {
                if let Some(c) = conf {
                    f(c);
                }
                ops(inner, f);
            }
        }
    }
    fn location(l: &Location, f: &mut dyn FnMut(&std::sync::Arc<LocConf>)) {
        f(&l.conf);
        ops(&l.conf.rewrites, f);
        for c in &l.children {
            location(c, f);
        }
    }
    for s in &plan.http.servers {
        f(&s.conf);
        ops(&s.rewrites, f);
        for l in s.locations.iter().chain(&s.named) {
            location(l, f);
        }
    }
}

/// Every log file `plan` opens at load time: `error_log`s at every level and `access_log`s
/// whose path has no variables (those are opened per request, by the serving process).
pub fn log_paths(plan: &Plan) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for e in &plan.main.error_logs {
        if let Some(p) = &e.path {
            add(p.clone());
        }
    }
    each_conf(plan, &mut |c| {
        for e in &c.error_logs {
            if let Some(p) = &e.path {
                add(p.clone());
            }
        }
        for a in &c.access_logs {
            if let Some(p) = a.path.as_ref().and_then(|t| t.as_literal()) {
                add(PathBuf::from(p));
            }
        }
    });
    out
}

/// The certificate and key files `plan` loads, with their bytes (read with our privileges).
pub fn tls_files(plan: &Plan) -> Result<Vec<(PathBuf, Vec<u8>)>, ConfError> {
    let seen = RefCell::new(Vec::new());
    crate::runtime::tls::TlsSet::load_with(plan, &|p: &Path| {
        let bytes = std::fs::read(p)?;
        seen.borrow_mut().push((p.to_path_buf(), bytes.clone()));
        Ok(bytes)
    })?;
    Ok(seen.into_inner())
}

fn open_logs(paths: &[PathBuf]) -> Result<Vec<File>, OpenError> {
    paths
        .iter()
        .map(|p| {
            open_log_file(p).map_err(|error| OpenError {
                path: p.clone(),
                error,
            })
        })
        .collect()
}

fn bind_all(plan: &Plan, addrs: &[ListenAddr]) -> Result<Vec<TcpListener>, BindError> {
    addrs
        .iter()
        .map(|a| {
            let opts = plan
                .http
                .listens
                .iter()
                .find(|g| &g.addr == a)
                .map(|g| g.opts.clone())
                .unwrap_or_default();
            match a {
                ListenAddr::Inet(s) => super::daemon::bind_inet(*s, &opts),
                ListenAddr::Unix(_) => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
            }
            .map_err(|error| BindError {
                addr: a.clone(),
                error,
            })
        })
        .collect()
}

fn plan_addrs(plan: &Plan) -> Vec<ListenAddr> {
    let mut v: Vec<ListenAddr> = Vec::new();
    for g in &plan.http.listens {
        if !v.contains(&g.addr) {
            v.push(g.addr.clone());
        }
    }
    v
}

/// A bundle ready to send, with its descriptors.
struct Prepared {
    bundle: Bundle,
    sockets: Vec<TcpListener>,
    log_files: Vec<File>,
}

/// The privileged part of a config step: certificates read, new addresses bound, logs opened.
fn prepare(c: &Checked, serving: &[ListenAddr]) -> Result<Prepared, (Level, String)> {
    let emerg = |m: String| (Level::Emerg, m);
    let tls = tls_files(&c.plan).map_err(|e| (e.level, conf_error_message(&e)))?;
    let add = diff(serving, &plan_addrs(&c.plan)).add;
    let sockets = bind_all(&c.plan, &add).map_err(|e| emerg(e.to_string()))?;
    let logs = log_paths(&c.plan);
    let log_files = open_logs(&logs).map_err(|e| emerg(e.to_string()))?;
    let mut files = c.files.clone();
    files.extend(tls);
    Ok(Prepared {
        bundle: Bundle {
            kind: Kind::Config,
            files,
            listens: add,
            logs,
        },
        sockets,
        log_files,
    })
}

/// Sends a prepared bundle and waits for the serving process's answer: the addresses it serves.
/// A handover that failed on the socketpair (not in the configuration): the link is no longer
/// trustworthy (an answer may still be on its way), so the serving process is stopped.
struct LinkBroken(String);

fn hand_over(sock: &UnixStream, p: Prepared) -> Result<Vec<ListenAddr>, LinkBroken> {
    let call = |what: &str, e: io::Error| {
        LinkBroken(format!(
            "{what}() with the serving process failed {}",
            super::errno_text(&e)
        ))
    };
    link::send(sock, &p.bundle, &p.sockets, &p.log_files).map_err(|e| call("sendmsg", e))?;
    let ack = link::recv(sock).map_err(|e| call("recvmsg", e))?;
    if ack.bundle.kind != Kind::Ack {
        return Err(LinkBroken(
            "unexpected message from the serving process".into(),
        ));
    }
    Ok(ack.bundle.listens)
    // Our copies of the sockets and files close here: the serving process owns them now, and a
    // socket it closes must really close.
}

fn reopen(sock: &UnixStream, logs: &[PathBuf]) -> Result<(), String> {
    let files = open_logs(logs).map_err(|e| e.to_string())?;
    let b = Bundle {
        kind: Kind::Reopen,
        logs: logs.to_vec(),
        ..Bundle::default()
    };
    link::send(sock, &b, &[] as &[File], &files).map_err(|e| {
        format!(
            "sendmsg() to the serving process failed {}",
            super::errno_text(&e)
        )
    })
}

fn emerg(msg: &str) -> i32 {
    eprintln!("nginx-rs: [emerg] {msg}");
    1
}

/// The privileged supervisor (module doc): starts the serving process as `user`, hands it the
/// configuration, and turns SIGHUP / SIGUSR1 into bundles. `check` re-reads and fully checks the
/// configuration as root; `child_args` are nginx-rs's own arguments (without `argv[0]`) for the
/// serving process, which needs the same `-p`, `-c`, `-e` and `-g`. Returns the exit code.
pub fn run<F>(first: Checked, check: F, child_args: Vec<OsString>) -> i32
where
    F: FnMut() -> Result<Checked, ConfError>,
{
    let log = match ErrorLog::open(&first.plan.main.error_logs) {
        Ok(l) => l,
        Err(e) => return emerg(&e.to_string()),
    };
    let creds = match privs::resolve(first.plan.main.user.as_ref()) {
        Ok(c) => c,
        Err(m) => return emerg(&m),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return emerg(&format!(
                "cannot start the runtime {}",
                super::errno_text(&e)
            ))
        }
    };
    rt.block_on(supervise(first, check, child_args, creds, log))
}

fn spawn_child(
    creds: &Creds,
    theirs: &UnixStream,
    child_args: Vec<OsString>,
) -> io::Result<tokio::process::Child> {
    let fd = theirs.as_raw_fd();
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("nginx-rs"));
    // /proc/self/exe: the very binary running now, even if the file was replaced since.
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg0(argv0)
        .arg(SERVE_FLAG)
        .arg(fd.to_string())
        .arg(&creds.user)
        .arg(creds.uid.to_string())
        .arg(creds.gid.to_string())
        .arg("--")
        .args(child_args)
        .stdin(std::process::Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe; it keeps the child's end of the socketpair open across exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

fn exit_code(status: &std::process::ExitStatus) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (c, format!("exited with code {c}")),
        (None, Some(s)) => (128 + s, format!("exited on signal {s}")),
        _ => (1, "exited".to_string()),
    }
}

async fn supervise<F>(
    first: Checked,
    mut check: F,
    child_args: Vec<OsString>,
    creds: Creds,
    mut log: ErrorLog,
) -> i32
where
    F: FnMut() -> Result<Checked, ConfError>,
{
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return emerg(&format!("sigaction() failed {}", super::errno_text(&e))),
    };
    let pid_path = first.plan.main.pid.clone();
    let (mine, theirs) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => return emerg(&format!("socketpair() failed {}", super::errno_text(&e))),
    };
    // Bind (and open, and read) before starting anyone: nginx's `bind() ... failed` and exit 1,
    // as in single mode.
    let start = match prepare(&first, &[]) {
        Ok(p) => p,
        Err((_, m)) => return emerg(&m),
    };
    let mut child = match spawn_child(&creds, &theirs, child_args) {
        Ok(c) => c,
        Err(e) => return emerg(&format!("fork() failed {}", super::errno_text(&e))),
    };
    drop(theirs);
    let child_pid = child.id().map_or(0, |p| p as i32);
    // A stuck serving process must not hang the supervisor forever.
    let _ = mine.set_read_timeout(Some(Duration::from_secs(120)));
    let mut serving = match hand_over(&mine, start) {
        Ok(s) => s,
        Err(LinkBroken(m)) => {
            log.log(Level::Alert, None, &m, None);
            // Whatever the serving process got to, it must not outlive us.
            let _ = super::send::kill(child_pid, libc::SIGTERM);
            let code = match child.wait().await {
                Ok(st) => exit_code(&st).0,
                Err(_) => 1,
            };
            return code.max(1);
        }
    };
    log.log(
        Level::Notice,
        None,
        &format!("start worker process {child_pid}"),
        None,
    );
    let _pid = match PidFile::create(&pid_path) {
        Ok(p) => p,
        Err(e) => {
            log.log(Level::Emerg, None, &e.to_string(), None);
            let _ = super::send::kill(child_pid, libc::SIGTERM);
            let _ = child.wait().await;
            return 1;
        }
    };
    let mut logs = log_paths(&first.plan);
    drop(first);
    let mut stopping = false;
    loop {
        // Start-up and each signal's work (a reload compiles everything) touched code and heap
        // that waiting for the next signal does not need.
        super::daemon::release_startup_memory();
        tokio::select! {
            r = signals.recv_from() => {
                log.log(Level::Notice, None, &r.notice(), None);
                match r.event {
                    Event::Reload => {
                        log.log(Level::Notice, None, "reconfiguring", None);
                        let c = match check() {
                            Ok(c) => c,
                            Err(e) => {
                                log.log(e.level, None, &conf_error_message(&e), None);
                                continue;
                            }
                        };
                        let p = match prepare(&c, &serving) {
                            Ok(p) => p,
                            Err((level, m)) => {
                                log.log(level, None, &m, None);
                                continue;
                            }
                        };
                        match hand_over(&mine, p) {
                            Ok(s) => {
                                serving = s;
                                logs = log_paths(&c.plan);
                                if let Ok(l) = ErrorLog::open(&c.plan.main.error_logs) {
                                    log = l;
                                }
                            }
                            Err(LinkBroken(m)) => {
                                // Stop the serving process; its exit ends the supervisor
                                // (non-zero), and systemd restarts the service cleanly.
                                log.log(Level::Alert, None, &m, None);
                                let _ = super::send::kill(child_pid, libc::SIGTERM);
                            }
                        }
                    }
                    Event::Reopen => {
                        log.log(Level::Notice, None, "reopening logs", None);
                        for e in log.reopen() {
                            log.log(Level::Emerg, None, &e.to_string(), None);
                        }
                        if let Err(m) = reopen(&mine, &logs) {
                            log.log(Level::Alert, None, &m, None);
                        }
                    }
                    Event::GracefulStop | Event::FastStop => {
                        stopping = true;
                        // Ctrl-C signals the whole process group: the serving process may have
                        // got it (and exited) already, so "no such process" is not an error.
                        match super::send::kill(child_pid, r.signo) {
                            Err(super::SendError::Kill { error, .. })
                                if error.raw_os_error() == Some(libc::ESRCH) => {}
                            Err(e) => log.log(Level::Alert, None, &e.to_string(), None),
                            Ok(()) => {}
                        }
                    }
                }
            }
            st = child.wait() => {
                let (code, how) = match &st {
                    Ok(s) => exit_code(s),
                    Err(e) => (1, format!("wait failed {}", super::errno_text(e))),
                };
                let level = if stopping && code == 0 { Level::Notice } else { Level::Alert };
                log.log(level, None, &format!("worker process {child_pid} {how}"), None);
                log.log(Level::Notice, None, "exit", None);
                // Unexpected death is an error even if the child said 0: systemd restarts us.
                return if stopping { code } else { code.max(1) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_round_trip_and_truncation() {
        let b = Bundle {
            kind: Kind::Reopen,
            files: vec![("/etc/nginx-rs/nginx.conf".into(), b"events {}\n".to_vec())],
            listens: vec![
                ListenAddr::Inet("127.0.0.1:80".parse().expect("addr")),
                ListenAddr::Inet("[::1]:443".parse().expect("addr")),
                ListenAddr::Unix("/run/x.sock".into()),
            ],
            logs: vec!["/var/log/a.log".into()],
        };
        let enc = b.encode();
        assert_eq!(Bundle::decode(&enc).expect("decode"), b);
        for cut in 0..enc.len() {
            assert!(Bundle::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            b.file(Path::new("/etc/nginx-rs/nginx.conf")),
            Some(&b"events {}\n"[..])
        );
    }

    #[test]
    fn the_compiler_reads_a_bundle_not_the_disk() {
        use crate::conf::include::{with_files, FileMap};
        use crate::conf::{load_file, LoadOptions};
        // Paths that do not exist on disk: everything must come from the map.
        let files: FileMap = [
            (
                "/nonexistent-bundle/main.conf",
                "events {}\ninclude /nonexistent-bundle/conf.d/*.conf;\n",
            ),
            ("/nonexistent-bundle/conf.d/b.conf", "b_directive;\n"),
            ("/nonexistent-bundle/conf.d/a.conf", "a_directive;\n"),
            ("/nonexistent-bundle/other/c.conf", "c_directive;\n"),
        ]
        .into_iter()
        .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
        .collect();
        let opts = LoadOptions {
            conf_prefix: "/nonexistent-bundle".into(),
        };
        let parsed = with_files(std::sync::Arc::new(files), || {
            load_file(Path::new("/nonexistent-bundle/main.conf"), &opts)
        });
        assert!(parsed.error.is_none(), "{:?}", parsed.error);
        let names: Vec<_> = parsed.directives.iter().map(|d| d.name.as_str()).collect();
        // The glob matches the bundle's files, sorted as glob(3) sorts them.
        assert_eq!(names, ["events", "a_directive", "b_directive"]);
        // Outside `with_files`, the same path is read from disk again (and is missing there).
        assert!(load_file(Path::new("/nonexistent-bundle/main.conf"), &opts)
            .error
            .is_some());
    }
}
