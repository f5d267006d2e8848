//! The privileged supervisor and the unprivileged serving process, for real: the `nginx-rs` binary
//! started as root on a configuration, an include and a TLS key that only root can read (0600 files
//! in 0700 directories, logs in a root-only directory); real HTTP backends on 127.0.0.1:0.
//!
//! - The supervisor (pid file) runs as root, the process handling requests as `nobody`.
//! - Reload under keepalive load that changes the upstream set and adds a port below 1024: zero
//!   failed requests, the removed backend gets no traffic afterwards, the low port is served.
//! - A broken configuration: `[emerg]` in the error log, serving goes on unchanged.
//! - SIGUSR1 after the access log was renamed: a new file in the root-only directory.
//! - `-s quit`: exit 0, pid file removed. The serving process dying: the supervisor exits non-zero.
//!
//! Every test is skipped, with a printed reason, when not run as root.

mod control_common;

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control_common::{free_addr, get_once, wait_for, Load};

const BIN: &str = env!("CARGO_BIN_EXE_nginx-rs");

/// Ports are picked by binding and releasing; one test at a time keeps them from colliding.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: privilege separation needs root (run the tests as root)");
    }
    root
}

fn nobody_uid() -> u32 {
    // SAFETY: NUL-terminated name; the record is read at once.
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    assert!(!pw.is_null(), "no user nobody on this machine");
    // SAFETY: non-null passwd record.
    unsafe { (*pw).pw_uid }
}

struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

/// A keepalive HTTP/1.1 backend answering `name`.
fn backend(name: &'static str) -> Backend {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = l.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let h = h.clone();
            std::thread::spawn(move || {
                let _ = serve_backend_conn(c, name, &h);
            });
        }
    });
    Backend { addr, hits }
}

fn serve_backend_conn(c: TcpStream, name: &str, hits: &AtomicUsize) -> io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut w = c;
    loop {
        let mut first = String::new();
        if r.read_line(&mut first)? == 0 {
            return Ok(());
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{name}",
            name.len()
        )?;
    }
}

/// A free port below 1024 on 127.0.0.1 (only root may bind it).
fn free_low_addr() -> SocketAddr {
    (81..1024)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .find(|a| TcpListener::bind(a).is_ok())
        .expect("a free port below 1024")
}

/// `dir` (0700) holds `conf/` (0700: nginx-rs.conf, servers.inc, the TLS pair, all 0600) and
/// `logs/` (0700).
struct Supervised {
    child: Child,
    dir: tempfile::TempDir,
}

fn private_dir(p: &Path) {
    fs::create_dir_all(p).expect("mkdir");
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).expect("chmod dir");
}

fn private_file(p: &Path, text: &str) {
    fs::write(p, text).expect("write");
    fs::set_permissions(p, fs::Permissions::from_mode(0o600)).expect("chmod file");
}

/// The main file: error and access logs in `logs/`, servers from the include (a glob).
fn main_conf(dir: &Path) -> String {
    format!(
        "pid {d}/logs/nginx-rs.pid;\nerror_log {d}/logs/error.log notice;\nevents {{}}\n\
         http {{\n  access_log {d}/logs/access.log combined;\n  include {d}/conf/*.inc;\n}}\n",
        d = dir.display()
    )
}

/// The servers: plain `listens` and one TLS port, proxying to `backends`.
fn servers(dir: &Path, listens: &[SocketAddr], tls: SocketAddr, backends: &[SocketAddr]) -> String {
    let listens: String = listens.iter().map(|a| format!("listen {a}; ")).collect();
    let servers: String = backends.iter().map(|a| format!("server {a}; ")).collect();
    format!(
        "upstream b {{ {servers}}}\nserver {{ {listens}listen {tls} ssl;\n  \
         ssl_certificate {d}/conf/site.crt; ssl_certificate_key {d}/conf/site.key;\n  \
         location / {{ proxy_pass http://b; }}\n}}\n",
        d = dir.display()
    )
}

impl Supervised {
    fn start(listens: &[SocketAddr], tls: SocketAddr, backends: &[SocketAddr]) -> Supervised {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        private_dir(d);
        private_dir(&d.join("conf"));
        private_dir(&d.join("logs"));
        let key = rcgen::KeyPair::generate().expect("keygen");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("self-signed");
        private_file(&d.join("conf/site.crt"), &cert.pem());
        private_file(&d.join("conf/site.key"), &key.serialize_pem());
        private_file(&d.join("conf/nginx-rs.conf"), &main_conf(d));
        private_file(
            &d.join("conf/servers.inc"),
            &servers(d, listens, tls, backends),
        );
        let child = Command::new(BIN)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("conf/nginx-rs.conf"))
            .spawn()
            .expect("spawn nginx-rs");
        let s = Supervised { child, dir };
        wait_for(|| s.pid_path().exists(), "pid file");
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn pid_path(&self) -> PathBuf {
        self.path("logs/nginx-rs.pid")
    }

    fn supervisor_pid(&self) -> u32 {
        fs::read_to_string(self.pid_path())
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// The serving process: the supervisor's only child.
    fn serving_pid(&self) -> u32 {
        let p = self.supervisor_pid();
        let kids = fs::read_to_string(format!("/proc/{p}/task/{p}/children")).expect("children");
        let kids: Vec<u32> = kids
            .split_whitespace()
            .map(|k| k.parse().expect("pid"))
            .collect();
        assert_eq!(kids.len(), 1, "one serving process: {kids:?}");
        kids[0]
    }

    fn write_servers(&self, text: &str) {
        private_file(&self.path("conf/servers.inc"), text);
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.path("logs/error.log")).unwrap_or_default()
    }

    /// `nginx-rs -s SIGNAL` with the same prefix and configuration.
    fn cli_signal(&self, sig: &str) -> std::process::Output {
        Command::new(BIN)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.path("conf/nginx-rs.conf"))
            .args(["-s", sig])
            .output()
            .expect("nginx-rs -s")
    }

    fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..800 {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nginx-rs did not exit");
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM reaches the supervisor, which stops the serving process too.
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.wait_exit();
        }
    }
}

/// The `Uid:` line of /proc/PID/status: real, effective, saved, filesystem.
fn uids(pid: u32) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    line.split_whitespace()
        .skip(1)
        .map(|u| u.parse().expect("uid"))
        .collect()
}

fn curl_tls(addr: SocketAddr) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "5"])
        .arg(format!("https://{addr}/"))
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn supervisor_root_server_nobody_reload_under_load() {
    if !root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (one, two) = (backend("one"), backend("two"));
    let (p, tls, low) = (free_addr(), free_addr(), free_low_addr());
    let (b1, b2) = (one.addr, two.addr);
    let s = Supervised::start(&[p], tls, &[b1, b2]);
    let dir = s.dir.path().to_path_buf();

    // Who runs as whom.
    assert_eq!(uids(s.supervisor_pid()), [0, 0, 0, 0], "supervisor is root");
    let n = nobody_uid();
    assert_eq!(
        uids(s.serving_pid()),
        [n, n, n, n],
        "serving process is nobody"
    );
    assert_eq!(
        get_once(p, "/").map(|b| b == "one" || b == "two").ok(),
        Some(true)
    );
    // The key only root can read was loaded: TLS is served (when curl is installed).
    match curl_tls(tls) {
        Some(body) => assert!(body == "one" || body == "two", "TLS body {body:?}"),
        None => eprintln!("curl not installed: TLS request skipped"),
    }

    // Keepalive clients on the kept port for the whole test.
    let load = Load::start(p, 4);
    load.wait_requests(100);
    assert!(
        two.hits.load(Ordering::SeqCst) > 0,
        "both backends used at first"
    );

    // 1. Drop backend two and add a port below 1024: only root can bind it, only root can read
    //    the files; the serving process (nobody) gets both from the supervisor.
    s.write_servers(&servers(&dir, &[p, low], tls, &[b1]));
    let out = s.cli_signal("reload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(|| get_once(low, "/").is_ok(), "the port below 1024");
    let two_after = two.hits.load(Ordering::SeqCst);
    load.wait_requests(300);
    assert_eq!(
        two.hits.load(Ordering::SeqCst),
        two_after,
        "removed backend got traffic"
    );
    assert_eq!(get_once(low, "/").expect("low port"), "one");

    // 2. A broken line: [emerg] in the error log, still serving the last good configuration.
    let broken = servers(&dir, &[p, low], tls, &[b1]) + "bogus_directive on;\n";
    s.write_servers(&broken);
    // SAFETY: kill with a pid read from our own pid file.
    assert_eq!(
        unsafe { libc::kill(s.supervisor_pid() as i32, libc::SIGHUP) },
        0
    );
    wait_for(|| s.error_log().contains("[emerg]"), "[emerg] line");
    let log = s.error_log();
    let emerg = log.lines().find(|l| l.contains("[emerg]")).expect("emerg");
    assert!(
        emerg.ends_with(&format!(
            "unknown directive \"bogus_directive\" in {}/conf/servers.inc:6",
            dir.display()
        )),
        "{emerg}"
    );
    // nginx's notice, with the sender (this test process sent the SIGHUP).
    let notice = format!(
        "signal 1 (SIGHUP) received from {}, reconfiguring",
        std::process::id()
    );
    assert!(log.contains(&notice), "{log}");
    load.wait_requests(100);
    assert_eq!(get_once(low, "/").expect("low port still served"), "one");

    // 3. Remove the low port again: the serving process closes it (the supervisor kept no copy).
    s.write_servers(&servers(&dir, &[p], tls, &[b1]));
    let out = s.cli_signal("reload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(|| TcpStream::connect(low).is_err(), "the low port closed");
    load.wait_requests(100);

    assert_eq!(load.finish(), 0, "failed requests during reloads");
    assert_eq!(two.hits.load(Ordering::SeqCst), two_after);
}

#[test]
fn reopen_in_a_root_only_log_dir_then_quit() {
    if !root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let one = backend("one");
    let (p, tls) = (free_addr(), free_addr());
    let mut s = Supervised::start(&[p], tls, &[one.addr]);
    let log = s.path("logs/access.log");
    let rotated = s.path("logs/access.log.1");
    let lines = |f: &Path| {
        fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET /"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(get_once(p, "/before").expect("served"), "one");
    wait_for(|| lines(&log).len() == 1, "first access line");
    fs::rename(&log, &rotated).expect("rotate");
    let out = s.cli_signal("reopen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // nobody could not create a file in logs/ (0700, root): the supervisor opened it.
    wait_for(|| log.exists(), "reopened access log");
    assert_eq!(get_once(p, "/after").expect("served"), "one");
    wait_for(|| lines(&log).len() == 1, "line in the new file");
    assert!(
        lines(&log)[0].contains("\"GET /after HTTP/1.1\" 200 3 "),
        "{:?}",
        lines(&log)
    );
    assert_eq!(lines(&rotated).len(), 1);
    assert!(lines(&rotated)[0].contains("\"GET /before HTTP/1.1\" 200 3 "));

    let out = s.cli_signal("quit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.wait_exit(), Some(0));
    assert!(!s.pid_path().exists(), "pid file removed");
    let elog = s.error_log();
    assert!(elog.contains("signal 3 (SIGQUIT) received from "), "{elog}");
    assert!(elog.contains("exited with code 0"), "{elog}");
}

#[test]
fn serving_process_death_stops_the_supervisor_non_zero() {
    if !root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let one = backend("one");
    let (p, tls) = (free_addr(), free_addr());
    let mut s = Supervised::start(&[p], tls, &[one.addr]);
    let serving = s.serving_pid();
    // SAFETY: kill on the serving process we just looked up.
    assert_eq!(unsafe { libc::kill(serving as i32, libc::SIGKILL) }, 0);
    let code = s.wait_exit();
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    assert!(!s.pid_path().exists(), "pid file removed");
    assert!(
        s.error_log().contains("exited on signal 9"),
        "{}",
        s.error_log()
    );
}
