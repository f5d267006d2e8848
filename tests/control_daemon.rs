//! The whole serving process, for real: a child process (this test binary re-executed) loads a
//! configuration with `cli::load` and serves it with `control::daemon::run`; real HTTP backends on
//! 127.0.0.1:0; signals sent through the pid file as `nginx-rs -s` does.
//!
//! - Reload under keepalive load: the upstream set changes (the removed backend gets no traffic
//!   afterwards), a port is added, a broken config is rejected with an `[emerg]` line while serving
//!   continues, the port is removed again — and not one request fails.
//! - Graceful quit with slow requests in flight: they complete, exit code 0, pid file removed.
//! - Fast stop.

mod control_common;

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control_common::{free_addr, get_once, wait_for, Load};

use nginx_rs::control::{send_signal, Signal};

const CHILD_ENV: &str = "NGINX_RS_TEST_DAEMON_CHILD";

/// Listen ports are picked by binding and releasing; one test at a time keeps them from colliding.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The child: serve `$DIR/nginx-rs.conf` until a signal stops it.
#[test]
fn daemon_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let conf = PathBuf::from(&dir).join("nginx-rs.conf");
    let paths = nginx_rs::cli::Paths {
        prefix: PathBuf::from(&dir),
        error_log: None,
        conf_file: conf.clone(),
        conf_prefix: PathBuf::from(&dir),
    };
    let plan = match nginx_rs::cli::load(&paths, None) {
        Ok(l) => l.plan,
        Err(f) => {
            eprintln!("nginx-rs: {}", f.error);
            std::process::exit(1);
        }
    };
    let code = nginx_rs::control::daemon::run(plan, move || {
        nginx_rs::cli::load(&paths, None)
            .map(|l| l.plan)
            .map_err(|f| f.error)
    });
    std::process::exit(code);
}

/// A keepalive HTTP/1.1 backend answering `name`; `/slow` waits a second first.
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    slow_started: Arc<AtomicUsize>,
}

fn backend(name: &'static str) -> Backend {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = l.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let slow_started = Arc::new(AtomicUsize::new(0));
    let (h, s) = (hits.clone(), slow_started.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let (h, s) = (h.clone(), s.clone());
            std::thread::spawn(move || {
                let _ = serve_backend_conn(c, name, &h, &s);
            });
        }
    });
    Backend {
        addr,
        hits,
        slow_started,
    }
}

fn serve_backend_conn(
    c: TcpStream,
    name: &str,
    hits: &AtomicUsize,
    slow: &AtomicUsize,
) -> io::Result<()> {
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
        if first.contains(" /slow") {
            slow.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(1));
        }
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{name}",
            name.len()
        )?;
    }
}

fn config(dir: &Path, listens: &[SocketAddr], backends: &[SocketAddr], extra: &str) -> String {
    let listens: String = listens.iter().map(|a| format!("listen {a}; ")).collect();
    let servers: String = backends.iter().map(|a| format!("server {a}; ")).collect();
    format!(
        "pid {d}/nginx-rs.pid;\nerror_log {d}/error.log notice;\nworker_processes 2;\nevents {{}}\n\
         http {{\n  access_log off;\n  upstream b {{ {servers}}}\n  server {{ {listens}\n    \
         location / {{ proxy_pass http://b; }}\n  }}\n}}\n{extra}",
        d = dir.display()
    )
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(conf: impl Fn(&Path) -> String) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_path = dir.path().join("nginx-rs.conf");
        fs::write(&conf_path, conf(dir.path())).expect("write conf");
        // Root-only configuration, as the issue asks (0600 file in a 0700 directory). nginx-rs does
        // not drop privileges yet, so this passes as root without the supervisor.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod dir");
        fs::set_permissions(&conf_path, fs::Permissions::from_mode(0o600)).expect("chmod conf");
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "daemon_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .spawn()
            .expect("spawn");
        let d = Daemon { child, dir };
        wait_for(|| d.pid_path().exists(), "pid file");
        d
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.path().join("nginx-rs.pid")
    }

    fn write_conf(&self, text: &str) {
        fs::write(self.dir.path().join("nginx-rs.conf"), text).expect("write conf");
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..800 {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("daemon did not exit");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn reload_under_load_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (one, two) = (backend("one"), backend("two"));
    let (p, p2) = (free_addr(), free_addr());
    let (b1, b2) = (one.addr, two.addr);
    let d = Daemon::start(|dir| config(dir, &[p], &[b1, b2], ""));
    let dir = d.dir.path().to_path_buf();
    assert!(get_once(p, "/").is_ok());

    // Keepalive clients on the kept port for the whole test.
    let load = Load::start(p, 4);
    load.wait_requests(100);
    assert!(
        two.hits.load(Ordering::SeqCst) > 0,
        "both backends used at first"
    );

    // 1. Drop backend two, add port p2.
    d.write_conf(&config(&dir, &[p, p2], &[b1], ""));
    send_signal(&d.pid_path(), Signal::Reload).expect("-s reload");
    wait_for(|| get_once(p2, "/").is_ok(), "new port p2");
    let two_after = two.hits.load(Ordering::SeqCst);
    load.wait_requests(300);
    assert_eq!(
        two.hits.load(Ordering::SeqCst),
        two_after,
        "removed backend got traffic"
    );

    // 2. A broken line: [emerg] in the error log, still serving the last good config.
    d.write_conf(&config(&dir, &[p, p2], &[b1], "bogus_directive on;\n"));
    send_signal(&d.pid_path(), Signal::Reload).expect("-s reload");
    wait_for(|| d.error_log().contains("[emerg]"), "[emerg] line");
    let log = d.error_log();
    let emerg = log.lines().find(|l| l.contains("[emerg]")).expect("emerg");
    assert!(
        emerg.ends_with(&format!(
            "unknown directive \"bogus_directive\" in {}/nginx-rs.conf:12",
            dir.display()
        )),
        "{emerg}"
    );
    load.wait_requests(100);
    assert_eq!(get_once(p2, "/").expect("p2 still served"), "one");

    // 3. Remove p2 again.
    d.write_conf(&config(&dir, &[p], &[b1], ""));
    send_signal(&d.pid_path(), Signal::Reload).expect("-s reload");
    wait_for(|| TcpStream::connect(p2).is_err(), "p2 closed");
    load.wait_requests(100);

    assert_eq!(load.finish(), 0, "failed requests during reloads");
    assert_eq!(two.hits.load(Ordering::SeqCst), two_after);
}

#[test]
fn graceful_quit_finishes_slow_requests() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let one = backend("one");
    let p = free_addr();
    let b1 = one.addr;
    let mut d = Daemon::start(|dir| config(dir, &[p], &[b1], ""));
    let slow: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get_once(p, "/slow")))
        .collect();
    wait_for(
        || one.slow_started.load(Ordering::SeqCst) == 3,
        "slow requests in flight",
    );
    send_signal(&d.pid_path(), Signal::Quit).expect("-s quit");
    for s in slow {
        assert_eq!(s.join().expect("thread").expect("slow request"), "one");
    }
    assert_eq!(d.wait_exit(), Some(0));
    assert!(!d.pid_path().exists(), "pid file removed");
    // nginx's notice, naming the sender (this test process sent the signal).
    let expected = format!(
        "signal 3 (SIGQUIT) received from {}, shutting down",
        std::process::id()
    );
    assert!(d.error_log().contains(&expected), "{}", d.error_log());
}

#[test]
fn fast_stop() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let one = backend("one");
    let p = free_addr();
    let b1 = one.addr;
    let mut d = Daemon::start(|dir| config(dir, &[p], &[b1], ""));
    assert_eq!(get_once(p, "/").expect("served"), "one");
    send_signal(&d.pid_path(), Signal::Stop).expect("-s stop");
    assert_eq!(d.wait_exit(), Some(0));
    assert!(!d.pid_path().exists(), "pid file removed");
}

#[test]
fn reopen_rotates_the_access_log() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let one = backend("one");
    let p = free_addr();
    let b1 = one.addr;
    let d = Daemon::start(|dir| {
        config(dir, &[p], &[b1], "").replace(
            "access_log off;",
            &format!("access_log {}/access.log combined;", dir.display()),
        )
    });
    let log = d.dir.path().join("access.log");
    let rotated = d.dir.path().join("access.log.1");
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
    send_signal(&d.pid_path(), Signal::Reopen).expect("-s reopen");
    wait_for(|| log.exists(), "reopened access log");
    assert_eq!(get_once(p, "/after").expect("served"), "one");
    wait_for(|| lines(&log).len() == 1, "line in the new file");
    assert!(
        lines(&rotated)[0].contains("\"GET /before HTTP/1.1\" 200 3 "),
        "{:?}",
        lines(&rotated)
    );
    assert!(
        lines(&log)[0].contains("\"GET /after HTTP/1.1\" 200 3 "),
        "{:?}",
        lines(&log)
    );
    assert_eq!(lines(&rotated).len(), 1);
}
