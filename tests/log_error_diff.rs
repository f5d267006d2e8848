//! Error-log lines for 502 and 504, nginx-rs against real nginx on the same configuration and the
//! same requests: everything after `*CONN ` must be byte-identical (the timestamp, `pid#tid` and the
//! connection number naturally differ). nginx-rs runs as a child process (this test binary
//! re-executed) through `cli::load` + `control::daemon::run`. Skipped when nginx is not installed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NGINX: &str = "/usr/sbin/nginx";
const CHILD_ENV: &str = "NGINX_RS_TEST_ERRLOG_CHILD";

/// The tests here pick free ports by binding and releasing them; run them one at a time so one test's
/// "nothing listens here" port cannot become another's backend.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn errlog_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let paths = nginx_rs::cli::Paths {
        prefix: PathBuf::from(&dir),
        error_log: None,
        conf_file: PathBuf::from(&dir).join("nginx.conf"),
        conf_prefix: PathBuf::from(&dir),
    };
    let plan = match nginx_rs::cli::load(&paths, None) {
        Ok(l) => l.plan,
        Err(f) => {
            eprintln!("nginx-rs: {}", f.error);
            std::process::exit(1);
        }
    };
    std::process::exit(nginx_rs::control::daemon::run(plan, move || {
        nginx_rs::cli::load(&paths, None)
            .map(|l| l.plan)
            .map_err(|f| f.error)
    }));
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM: nginx's master stops its workers; nginx-rs exits.
        // SAFETY: plain kill(2) to our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn wait_listening(addr: SocketAddr) {
    for _ in 0..400 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listening on {addr}");
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn config(dir: &Path, listen: SocketAddr, dead: SocketAddr, hang: SocketAddr) -> String {
    format!(
        "pid {d}/pid; error_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  \
         server {{\n    listen {listen};\n    \
         location /refused {{ proxy_pass http://{dead}; }}\n    \
         location /slow {{ proxy_pass http://{hang}; proxy_read_timeout 1s; }}\n  }}\n}}\n",
        d = dir.display()
    )
}

/// `2026/11/27 04:54:37 [error] 1234#5678: *17 `: nginx's prefix for a message about a connection.
fn nginx_prefix(line: &str) -> bool {
    let b = line.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let Some(rest) = line.get(19..).and_then(|r| r.strip_prefix(" [error] ")) else {
        return false;
    };
    let (ids, tail) = match rest.split_once(": *") {
        Some(x) => x,
        None => return false,
    };
    let ids_ok = ids.split_once('#').is_some_and(|(p, t)| {
        !p.is_empty() && !t.is_empty() && (p.to_owned() + t).bytes().all(|c| c.is_ascii_digit())
    });
    let conn_ok = tail
        .split_once(' ')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    digits(0..4)
        && b[4] == b'/'
        && digits(5..7)
        && b[7] == b'/'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && ids_ok
        && conn_ok
}

/// The part of each line after `*N `, for lines with a connection number.
fn tails(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let star = l.find(": *")?;
            let rest = &l[star + 3..];
            let sp = rest.find(' ')?;
            Some(rest[sp + 1..].to_string())
        })
        .collect()
}

fn run_requests(dir: &Path, listen: SocketAddr) -> Vec<String> {
    wait_listening(listen);
    assert!(get(listen, "/refused").starts_with("HTTP/1.1 502"));
    assert!(get(listen, "/slow?x=1").starts_with("HTTP/1.1 504"));
    let log = dir.join("error.log");
    for _ in 0..200 {
        let t = tails(&std::fs::read_to_string(&log).unwrap_or_default());
        if t.len() >= 2 {
            return t;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no error lines in {}", log.display());
}

#[test]
fn error_lines_for_502_and_504_match_nginx() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} not installed");
        return;
    }
    let dead = free_addr();
    // Accepts connections (kernel backlog) and never answers: the read timeout fires.
    let hang_l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang = hang_l.local_addr().expect("addr");

    // nginx. Its workers run as nobody: the directory must be reachable for them (logs are opened
    // by the master as root).
    let ndir = tempfile::tempdir().expect("tempdir");
    let nlisten = free_addr();
    std::fs::write(
        ndir.path().join("nginx.conf"),
        config(ndir.path(), nlisten, dead, hang),
    )
    .expect("write");
    let ngx = Proc(
        Command::new(NGINX)
            .arg("-p")
            .arg(ndir.path())
            .arg("-c")
            .arg(ndir.path().join("nginx.conf"))
            .arg("-g")
            .arg("daemon off; master_process on;")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx"),
    );
    let theirs = run_requests(ndir.path(), nlisten);
    drop(ngx);

    // nginx-rs on the same configuration and the same backends.
    let rdir = tempfile::tempdir().expect("tempdir");
    let rlisten = free_addr();
    std::fs::write(
        rdir.path().join("nginx.conf"),
        config(rdir.path(), rlisten, dead, hang),
    )
    .expect("write");
    let ours_proc = Proc(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "errlog_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, rdir.path())
            .spawn()
            .expect("spawn nginx-rs"),
    );
    let ours = run_requests(rdir.path(), rlisten);
    let raw = std::fs::read_to_string(rdir.path().join("error.log")).expect("error.log");
    for line in raw.lines().filter(|l| l.contains(" [error] ")) {
        assert!(nginx_prefix(line), "not nginx's line shape: {line}");
    }
    drop(ours_proc);

    let fix = |v: Vec<String>, l: SocketAddr| -> Vec<String> {
        v.into_iter()
            .map(|s| s.replace(&l.port().to_string(), "PORT"))
            .collect()
    };
    let (ours, theirs) = (fix(ours, rlisten), fix(theirs, nlisten));
    eprintln!("nginx lines: {theirs:#?}");
    assert_eq!(ours, theirs);
    drop(hang_l);
}

/// A backend answering every request with `hello` (and closing).
fn hello_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    addr
}

fn access_config(dir: &Path, listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "pid {d}/pid; error_log {d}/error.log;\nevents {{}}\nhttp {{\n  \
         access_log {d}/access.log combined;\n  server {{\n    listen {listen};\n    \
         location / {{ proxy_pass http://{backend}; }}\n  }}\n}}\n",
        d = dir.display()
    )
}

// A raw quote, backslash or UTF-8 in the request target is accepted by nginx but rejected (400) by the
// runtime's HTTP parser, so they ride in headers here; the target stays percent-encoded.
const TRICKY: &[u8] = b"GET /p%C3%A9th?q=%22x%22&b=1 HTTP/1.1\r\nHost: localhost\r\nReferer: http://r/\"q\"\r\nUser-Agent: agent \\ \"007\" caf\xc3\xa9\r\nConnection: close\r\n\r\n";

fn access_lines(dir: &Path, listen: SocketAddr) -> Vec<String> {
    wait_listening(listen);
    for req in [TRICKY, b"GET /plain HTTP/1.0\r\n\r\n".as_slice()] {
        let mut s = TcpStream::connect(listen).expect("connect");
        s.write_all(req).expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        // nginx-rs answers an HTTP/1.0 request with an HTTP/1.0 status line; nginx says HTTP/1.1.
        assert!(
            out.starts_with(b"HTTP/1.1 200") || out.starts_with(b"HTTP/1.0 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    let log = dir.join("access.log");
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // The wait_listening probe connections may be logged (nginx logs them as 400 or not at
        // all); keep only the two requests.
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("\"GET "))
            .map(|l| {
                // Drop the timestamp: `[...]`.
                let (a, rest) = l.split_once(" [").unwrap_or((l, ""));
                let (_, b) = rest.split_once("] ").unwrap_or(("", rest));
                format!("{a} [TIME] {b}")
            })
            .collect();
        if lines.len() >= 2 {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no access lines in {}", log.display());
}

#[test]
fn combined_access_line_matches_nginx_end_to_end() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} not installed");
        return;
    }
    let backend = hello_backend();
    let ndir = tempfile::tempdir().expect("tempdir");
    let nlisten = free_addr();
    std::fs::write(
        ndir.path().join("nginx.conf"),
        access_config(ndir.path(), nlisten, backend),
    )
    .expect("write");
    let ngx = Proc(
        Command::new(NGINX)
            .arg("-p")
            .arg(ndir.path())
            .arg("-c")
            .arg(ndir.path().join("nginx.conf"))
            .arg("-g")
            .arg("daemon off; master_process on;")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx"),
    );
    let theirs = access_lines(ndir.path(), nlisten);
    drop(ngx);

    let rdir = tempfile::tempdir().expect("tempdir");
    let rlisten = free_addr();
    std::fs::write(
        rdir.path().join("nginx.conf"),
        access_config(rdir.path(), rlisten, backend),
    )
    .expect("write");
    let rs = Proc(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "errlog_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, rdir.path())
            .spawn()
            .expect("spawn nginx-rs"),
    );
    let ours = access_lines(rdir.path(), rlisten);
    drop(rs);
    eprintln!("nginx lines: {theirs:#?}");
    assert_eq!(ours, theirs);
}
