//! Helpers shared by the upstream tests: hand-built `plan::Upstream` values (until the plan
//! compiler fills them) and tiny HTTP backends on 127.0.0.1 that answer their own name.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nginx_rs::conf::Span;
use nginx_rs::plan::{Balance, PeerAddr, Template, Upstream, UpstreamServer};

pub fn span() -> Span {
    Span::new("/test/nginx.conf".into(), 1, 1)
}

/// A `server` line with nginx's defaults (weight 1, max_fails 1, fail_timeout 10s).
pub fn server(name: &str, addrs: &[SocketAddr]) -> UpstreamServer {
    UpstreamServer {
        name: name.to_string(),
        addrs: addrs.iter().copied().map(PeerAddr::Inet).collect(),
        weight: 1,
        max_fails: 1,
        fail_timeout: Duration::from_secs(10),
        backup: false,
        down: false,
        max_conns: 0,
        resolve: false,
        span: span(),
    }
}

/// `server 127.0.0.1:PORT` where PORT is derived from `n` (never connected to by pure
/// balancing tests).
pub fn fake(n: u16) -> UpstreamServer {
    let addr: SocketAddr = ([127, 0, 0, 1], 10000 + n).into();
    server(&addr.to_string(), &[addr])
}

pub fn weighted(n: u16, weight: u32) -> UpstreamServer {
    UpstreamServer { weight, ..fake(n) }
}

pub fn upstream(method: Balance, servers: Vec<UpstreamServer>) -> Arc<Upstream> {
    Arc::new(Upstream {
        name: "backend".into(),
        method,
        servers,
        keepalive: None,
        keepalive_requests: 1000,
        keepalive_timeout: Duration::from_secs(60),
        keepalive_time: Duration::from_secs(3600),
        implicit: false,
        span: span(),
    })
}

pub fn hash(consistent: bool) -> Balance {
    Balance::Hash {
        key: Template::literal("$arg_k"),
        consistent,
    }
}

/// Free TCP ports on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

pub const NGINX: &str = "/usr/sbin/nginx";

/// A real nginx running a config in its own prefix directory; stopped on drop.
pub struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `None` (with the reason printed) when nginx is not installed.
    pub fn start(http_block: &str, ready_port: u16) -> Option<Nginx> {
        if !std::path::Path::new(NGINX).exists() {
            eprintln!("skipped: {NGINX} is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nginx.conf");
        let text = format!(
            "user root;\nworker_processes 1;\nevents {{ worker_connections 512; }}\n\
             http {{\n access_log off;\n{http_block}\n}}\n"
        );
        std::fs::write(&conf, text).expect("write nginx.conf");
        let p = dir.path().display().to_string();
        let child = std::process::Command::new(NGINX)
            .args(["-p", &p, "-c", &conf.display().to_string(), "-g"])
            .arg(format!(
                "daemon off; master_process on; pid {p}/nginx.pid; error_log stderr;"
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let nginx = Nginx { child, _dir: dir };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", ready_port)).is_ok() {
                return Some(nginx);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nginx did not start listening on {ready_port}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master makes it stop its workers too; SIGKILL would orphan them.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET from `from` (source address) to 127.0.0.1:`port`; returns the body.
pub fn http_get(port: u16, path: &str, from: Option<std::net::Ipv4Addr>) -> String {
    use std::io::{Read, Write};
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    if let Some(ip) = from {
        let src: SocketAddr = (ip, 0).into();
        sock.bind(&src.into()).expect("bind source address");
    }
    let dst: SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&dst.into()).expect("connect");
    let mut s: std::net::TcpStream = sock.into();
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("write request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    match resp.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => panic!("no HTTP response: {resp:?}"),
    }
}

/// `GET / HTTP/1.1` with `Host: backend`, into an upstream connection's request buffer.
#[allow(dead_code)]
pub fn write_get(buf: &mut Vec<u8>) {
    use nginx_rs::runtime::upstream::h1::write;
    buf.clear();
    write::request_line(buf, "GET", "/", false);
    write::header(buf, b"Host", b"backend");
    write::end(buf);
}
