//! Real nginx and nginx-rs processes for tests, each in its own temp prefix on a free port.
//!
//! Both get the same generated main config around the test's http-level text:
//!
//! ```text
//! daemon off; master_process off|on; worker_processes 1;
//! pid DIR/nginx.pid; error_log stderr info;
//! events { worker_connections 1024; }
//! http { access_log DIR/access.log; [nginx only: *_temp_path DIR/...;] <config> }
//! ```
//!
//! The only difference: nginx also gets its temp paths inside DIR (its compiled-in defaults are
//! under /var/lib/nginx), directives nginx-rs does not take. stderr (and so the error log) goes to
//! DIR/stderr.log. The process is killed when the [`Server`] is dropped.
//!
//! nginx-rs that does not start serving is a test failure (with its stderr). While a piece is
//! missing, `NGINX_RS_ALLOW_SKIP=1` turns that into a printed skip instead.
//!
//! ```ignore
//! let started = start_nginx(|port| format!("server {{ listen 127.0.0.1:{port}; }}"));
//! let Some(nginx) = skip_unless(started, Flavor::Nginx) else { return };
//! let ex = exchange(nginx.addr(), b"GET / HTTP/1.0\r\n\r\n");
//! ```
#![allow(dead_code)]

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs nginx; `NGINX_BIN` overrides it.
pub const DEFAULT_NGINX: &str = "/usr/sbin/nginx";
/// How long a server may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Nginx,
    NginxRs,
}

impl Flavor {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Nginx => "nginx",
            Flavor::NginxRs => "nginx-rs",
        }
    }
}

/// Why a server is not running.
#[derive(Debug)]
pub enum StartError {
    /// The binary is not installed.
    Absent(String),
    /// The process ended before it accepted a connection.
    Exited { status: ExitStatus, stderr: String },
    /// It neither accepted nor exited in time.
    NoAccept { stderr: String },
    /// Setting up the temp prefix or spawning failed.
    Io(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Absent(why) => write!(f, "{why}"),
            StartError::Exited { status, stderr } => {
                write!(f, "exited ({status}) before accepting; stderr: {stderr:?}")
            }
            StartError::NoAccept { stderr } => write!(
                f,
                "did not accept within {START_TIMEOUT:?}; stderr: {stderr:?}"
            ),
            StartError::Io(e) => write!(f, "cannot start: {e}"),
        }
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Io(e)
    }
}

/// Options for the generated main config.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `master_process on` (nginx forks a worker) instead of one process.
    pub master_process: bool,
}

/// A running nginx or nginx-rs; killed on drop.
pub struct Server {
    flavor: Flavor,
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    /// Which server this is.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// 127.0.0.1:port it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp prefix (config, logs, pid).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything written to stderr so far (startup messages and the error log).
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.path().join("stderr.log"))
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.path().join("access.log"))
    }

    /// The process id (nginx's master when `master_process on`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// SIGTERM (nginx's master then stops its workers), SIGKILL if it lingers. A plain SIGKILL of
/// an nginx master leaves its workers running, orphaned.
pub fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // The pid is our own child that has not been reaped, so it cannot have been reused.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The nginx binary, or why there is none.
pub fn nginx_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("NGINX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NGINX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "nginx is not installed at {} (set NGINX_BIN, or run .ci/run)",
            path.display()
        ))
    }
}

/// The nginx-rs binary cargo built for this test run.
pub fn nginx_rs_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nginx-rs"))
}

/// A port that was free a moment ago (the kernel's choice for 127.0.0.1:0).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Prints why the current test is skipped, in a form `grep SKIP` finds.
pub fn print_skip(reason: &str) {
    let name = std::thread::current()
        .name()
        .unwrap_or("<test>")
        .to_string();
    eprintln!("SKIP {name}: {reason}");
}

/// Starts real nginx with `http(port)` as the contents of `http {}`.
pub fn start_nginx(http: impl Fn(u16) -> String) -> Result<Server, StartError> {
    start(Flavor::Nginx, Options::default(), &http)
}

/// Starts nginx-rs with `http(port)` as the contents of `http {}`.
pub fn start_nginx_rs(http: impl Fn(u16) -> String) -> Result<Server, StartError> {
    start(Flavor::NginxRs, Options::default(), &http)
}

/// Starts `flavor` with options; retries on another port if the chosen one was taken meanwhile.
pub fn start(
    flavor: Flavor,
    options: Options,
    http: &dyn Fn(u16) -> String,
) -> Result<Server, StartError> {
    let mut last = None;
    for _ in 0..3 {
        let port = free_port()?;
        match start_on(flavor, options, port, &http(port)) {
            Err(StartError::Exited { status, stderr })
                if stderr.contains("Address already in use") =>
            {
                last = Some(StartError::Exited { status, stderr });
            }
            other => return other,
        }
    }
    // The loop ran at least once and only continues after setting `last`.
    Err(last.unwrap_or(StartError::Absent("no attempt made".into())))
}

/// The generated main config for `flavor` in `dir`.
pub fn main_config(flavor: Flavor, options: Options, dir: &Path, http: &str) -> String {
    let d = dir.display();
    let mut temp_paths = String::new();
    if flavor == Flavor::Nginx {
        for (directive, sub) in [
            ("client_body_temp_path", "client_body_temp"),
            ("proxy_temp_path", "proxy_temp"),
            ("fastcgi_temp_path", "fastcgi_temp"),
            ("uwsgi_temp_path", "uwsgi_temp"),
            ("scgi_temp_path", "scgi_temp"),
        ] {
            temp_paths.push_str(&format!("    {directive} {d}/{sub};\n"));
        }
    }
    format!(
        "# generated by tests/support/nginx.rs\n\
         daemon off;\n\
         master_process {master};\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log stderr info;\n\
         events {{\n    worker_connections 1024;\n}}\n\
         http {{\n    access_log {d}/access.log;\n{temp_paths}{http}\n}}\n",
        master = if options.master_process { "on" } else { "off" },
    )
}

/// Starts `flavor` on `port` with `http` as the contents of `http {}` and waits for it to accept.
pub fn start_on(
    flavor: Flavor,
    options: Options,
    port: u16,
    http: &str,
) -> Result<Server, StartError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-test-", flavor.name()))
        .tempdir()?;
    let conf = dir.path().join("nginx.conf");
    fs::write(&conf, main_config(flavor, options, dir.path(), http))?;
    let mut cmd = match flavor {
        Flavor::Nginx => {
            let mut c = Command::new(nginx_binary().map_err(StartError::Absent)?);
            // -e: nginx opens its default error log before reading the config otherwise.
            c.arg("-e").arg("stderr");
            c
        }
        Flavor::NginxRs => Command::new(nginx_rs_binary()),
    };
    cmd.arg("-p").arg(dir.path()).arg("-c").arg(&conf);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let child = spawn_and_wait(cmd, &dir.path().join("stderr.log"), addr)?;
    Ok(Server {
        flavor,
        child,
        dir,
        port,
    })
}

/// A process started from a command line of the test's choosing (e.g. nginx-rs on a fixture);
/// killed on drop.
pub struct Process {
    child: Child,
    stderr_file: tempfile::NamedTempFile,
}

impl Process {
    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(self.stderr_file.path())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// Runs `cmd` and waits until something accepts on `addr`.
pub fn spawn_until_accepting(cmd: Command, addr: SocketAddr) -> Result<Process, StartError> {
    let stderr_file = tempfile::NamedTempFile::new()?;
    let child = spawn_and_wait(cmd, stderr_file.path(), addr)?;
    Ok(Process { child, stderr_file })
}

fn spawn_and_wait(mut cmd: Command, stderr: &Path, addr: SocketAddr) -> Result<Child, StartError> {
    File::create(stderr)?;
    // Both in append mode, so stdout and stderr lines interleave instead of overwriting.
    let append = || File::options().append(true).open(stderr);
    cmd.stdin(Stdio::null()).stdout(append()?).stderr(append()?);
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(StartError::Exited {
                status,
                stderr: read_lossy(stderr),
            });
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            stop_child(&mut child);
            return Err(StartError::NoAccept {
                stderr: read_lossy(stderr),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether nginx-rs that does not serve must fail the test (the default) instead of skipping it
/// (`NGINX_RS_ALLOW_SKIP=1`).
pub fn nginx_rs_must_serve() -> bool {
    !std::env::var("NGINX_RS_ALLOW_SKIP").is_ok_and(|v| v == "1")
}

/// `Some(server)`, or None after printing why the test is skipped: nginx absent, or nginx-rs
/// not serving when `NGINX_RS_ALLOW_SKIP=1`. Any other failure to start panics:
/// that is a broken harness or config, not a missing piece.
pub fn skip_unless(started: Result<Server, StartError>, flavor: Flavor) -> Option<Server> {
    match (started, flavor) {
        (Ok(s), _) => Some(s),
        (Err(StartError::Absent(why)), _) => {
            print_skip(&why);
            None
        }
        (Err(e), Flavor::NginxRs) if !nginx_rs_must_serve() => {
            print_skip(&format!(
                "nginx-rs does not serve (skipped because NGINX_RS_ALLOW_SKIP=1): {e}"
            ));
            None
        }
        (Err(e), flavor) => panic!("{} did not start: {e}", flavor.name()),
    }
}

/// `nginx -t` on `conf`, with `prefix` as prefix and pid-file directory, so nothing outside the
/// temporary directory is read or written. Panics only if nginx cannot be started at all.
pub fn nginx_t(conf: &Path, prefix: &Path) -> std::process::Output {
    let nginx = nginx_binary().unwrap_or_else(|e| panic!("nginx_t needs nginx: {e}"));
    Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .arg("-g")
        .arg(format!("pid {}/nginx.pid;", prefix.display()))
        .output()
        .expect("nginx runs")
}

/// Writes `dir/wrap.conf` = `events {} http { include FRAGMENT; }`: the way nginx reads an
/// http-level fragment with its own file and line numbers kept.
pub fn wrap_fragment(fragment: &Path, dir: &Path) -> PathBuf {
    let wrap = dir.join("wrap.conf");
    fs::write(
        &wrap,
        format!("events {{}} http {{ include {}; }}\n", fragment.display()),
    )
    .expect("write wrap.conf");
    wrap
}
