//! Test support for the runtime: Plans from real config text (`compile`) or built by hand (for
//! shapes the compiler has no directive for yet), raw-TCP backends that record exactly what they
//! received, and a raw HTTP/1 client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use nginx_rs::conf::Span;
use nginx_rs::plan::*;
use nginx_rs::runtime::{self, Live};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Compile nginx config text (a whole file, or a fragment read as the inside of `http {}`) into a
/// Plan with the system resolver. Panics with nginx's message if the config is rejected.
pub fn compile(text: &str) -> Plan {
    let lopts = nginx_rs::conf::parser::LoadOptions {
        conf_prefix: std::env::temp_dir(),
    };
    let parsed =
        nginx_rs::conf::parser::parse_bytes(text.as_bytes(), Arc::from("/test.conf"), &lopts);
    if let Some(e) = &parsed.error {
        panic!("config does not parse: {e}");
    }
    let opts = nginx_rs::plan::CompileOptions {
        prefix: std::env::temp_dir(),
        conf_prefix: std::env::temp_dir(),
        resolver: Arc::new(nginx_rs::cli::SystemResolver),
        ..Default::default()
    };
    match nginx_rs::plan::compile(&parsed, &opts) {
        Ok((plan, _warnings)) => plan,
        Err(e) => panic!("config rejected: {e}"),
    }
}

/// A port that was free a moment ago (bound to 0, then released) for configs that need a number.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn span() -> Span {
    Span::new("/test.conf".into(), 1, 1)
}

pub fn tpl(parts: &[&str]) -> Template {
    // "$host" style entries become variables via `var`; others are literals.
    Template {
        segments: parts
            .iter()
            .map(|p| match p.strip_prefix('$') {
                Some(v) => Segment::Var(var(v)),
                None => Segment::Literal(Arc::from(*p)),
            })
            .collect(),
    }
}

pub fn var(name: &str) -> Var {
    // `slotN` names a per-request slot directly; everything else is what the plan compiler knows.
    if let Some(i) = name.strip_prefix("slot") {
        return Var::Slot(i.parse().expect("slot index"));
    }
    if let [d @ b'0'..=b'9'] = name.as_bytes() {
        return Var::Capture(d - b'0');
    }
    nginx_rs::plan::vars::builtin(name)
        .unwrap_or_else(|| panic!("test helper: unknown variable {name}"))
}

pub fn regex(src: &str, caseless: bool, named: &[(usize, u32)]) -> Regex {
    let compiled = pcre2::bytes::RegexBuilder::new()
        .caseless(caseless)
        .build(src)
        .expect("test regex");
    Regex {
        source: Arc::from(src),
        caseless,
        compiled: Arc::new(compiled),
        named: named.to_vec(),
    }
}

pub fn upstream(name: &str, addrs: &[SocketAddr]) -> Arc<Upstream> {
    Arc::new(Upstream {
        name: name.into(),
        method: Balance::RoundRobin,
        servers: addrs
            .iter()
            .map(|a| UpstreamServer {
                name: a.to_string(),
                addrs: vec![PeerAddr::Inet(*a)],
                weight: 1,
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
                backup: false,
                down: false,
                max_conns: 0,
                resolve: false,
                span: span(),
            })
            .collect(),
        keepalive: None,
        keepalive_requests: 1000,
        keepalive_timeout: Duration::from_secs(60),
        keepalive_time: Duration::from_secs(3600),
        implicit: false,
        span: span(),
    })
}

/// nginx's default header list: `Host $proxy_host`, `Connection close`.
pub fn default_headers() -> Vec<(http::HeaderName, Template)> {
    vec![
        (http::header::HOST, tpl(&["$proxy_host"])),
        (http::header::CONNECTION, tpl(&["close"])),
    ]
}

pub fn proxy_conf(up: &Arc<Upstream>, uri: Option<&str>) -> ProxyConf {
    ProxyConf {
        pass: ProxyPass::Static {
            scheme: Scheme::Http,
            upstream: up.clone(),
            uri: uri.map(String::from),
            proxy_host: Arc::from(up.name.as_str()),
            proxy_port: 80,
        },
        set_headers: Arc::new(default_headers()),
        set_header_names: Arc::default(),
        http_version: HttpVersion::Http10,
        connect_timeout: Duration::from_secs(60),
        read_timeout: Duration::from_secs(60),
        send_timeout: Duration::from_secs(60),
        next_upstream: NextUpstream::default(),
        next_upstream_tries: 0,
        next_upstream_timeout: None,
        buffering: true,
        request_buffering: true,
        buffer_size: 4096,
        redirect: ProxyRedirect::Default,
        hide_headers: vec![],
        pass_headers: vec![],
        ignore_headers: vec![],
        intercept_errors: false,
        pass_request_headers: true,
        pass_request_body: true,
        set_body: None,
        method: None,
        ssl_server_name: false,
        ssl_name: None,
        ssl_verify: false,
        ssl_trusted_certificate: None,
        span: span(),
    }
}

pub fn loc_conf(proxy: Option<ProxyConf>) -> Arc<LocConf> {
    Arc::new(LocConf::from(LocSettings {
        proxy,
        ..base_loc_conf()
    }))
}

pub fn loc(
    matcher: LocMatch,
    proxy: Option<ProxyConf>,
    children: Vec<Arc<Location>>,
) -> Arc<Location> {
    Arc::new(Location {
        matcher,
        conf: loc_conf(proxy),
        children: children.into(),
        span: span(),
    })
}

pub fn prefix(path: &str) -> LocMatch {
    LocMatch::Prefix {
        path: path.into(),
        no_regex: false,
    }
}

pub fn server(names: Vec<ServerName>, locations: Vec<Arc<Location>>) -> Arc<Server> {
    Arc::new(Server {
        names,
        listens: vec![],
        locations,
        named: vec![],
        conf: loc_conf(None),
        rewrites: vec![],
        tls: None,
        span: span(),
    })
}

/// A server with a mutable conf (limits etc.).
pub fn server_with_conf(
    names: Vec<ServerName>,
    locations: Vec<Arc<Location>>,
    conf: LocSettings,
) -> Arc<Server> {
    Arc::new(Server {
        names,
        listens: vec![],
        locations,
        named: vec![],
        conf: Arc::new(LocConf::from(conf)),
        rewrites: vec![],
        tls: None,
        span: span(),
    })
}

/// The settings of a level that sets nothing (the merge's defaults), to adjust in a test.
pub fn base_loc_conf() -> LocSettings {
    LocSettings {
        merge_slashes: true,
        absolute_redirect: true,
        port_in_redirect: true,
        default_type: "text/plain".into(),
        ..LocSettings::default()
    }
}

/// A Plan with all `servers` on one ephemeral 127.0.0.1 port; `default` is the default server.
pub fn plan(servers: Vec<Arc<Server>>, default: usize, upstreams: Vec<Arc<Upstream>>) -> Plan {
    let n = servers.len();
    Plan {
        main: MainConf {
            worker_processes: Some(1),
            worker_connections: 512,
            pid: "/tmp/nginx-rs-test.pid".into(),
            error_logs: vec![],
            daemon: false,
            master_process: false,
            user: None,
            worker_rlimit_nofile: None,
            worker_shutdown_timeout: None,
        },
        http: Http {
            servers,
            listens: vec![ListenGroup {
                addr: ListenAddr::Inet("127.0.0.1:0".parse().expect("addr")),
                opts: ListenOpts::default(),
                servers: (0..n).collect(),
                default_server: default,
            }],
            upstreams,
            maps: vec![],
            log_formats: vec![],
            slots: vec![],
        },
        files: vec![],
    }
}

/// A running nginx-rs on an ephemeral port; stops (gracefully) on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    pub live: Arc<ArcSwap<Live>>,
    shutdown: watch::Sender<bool>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Proxy {
    pub async fn start(plan: Plan) -> Proxy {
        Self::start_live(plan, |l| l).await
    }

    /// Start with `f` applied to the first `Live` (e.g. to add a request-done hook).
    pub async fn start_live(plan: Plan, f: impl FnOnce(Live) -> Live) -> Proxy {
        let plan = Arc::new(plan);
        let listeners = runtime::bind(&plan).expect("bind");
        let addr = listeners.sockets[0].1.local_addr().expect("local addr");
        let live = Arc::new(ArcSwap::from_pointee(f(Live::new(plan, None))));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(runtime::serve(listeners, live.clone(), rx));
        Proxy {
            addr,
            live,
            shutdown: tx,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// How a test backend answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200, body = the raw request head and body it received; header `X-Backend: NAME`.
    Echo,
    /// Answer with this status (body "status").
    Status(u16),
    /// Accept, read the request, never answer.
    Hang,
    /// Accept and close at once without answering.
    Close,
    /// Send the response headers, then this many body chunks with 100 ms between them.
    Slow(usize),
    /// Respond with extra headers the proxy must hide or pass.
    Headers(Vec<(String, String)>),
    /// Echo, but close the connection after each response without saying so (a keepalive
    /// connection that dies while idle in the proxy's pool).
    CloseAfterResponse,
    /// Answer 101 (WebSocket-style upgrade), then echo every byte back.
    Upgrade,
    /// 200 with a body of this many bytes.
    Big(usize),
    /// Answer bytes that are not HTTP.
    Garbage,
    /// 302 with this `Location` (`SELF` = the backend's own address).
    Redirect(String),
}

pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Backend {
    pub async fn spawn(name: &str, behaviour: Behaviour) -> Backend {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("backend bind");
        let addr = l.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (rx, cx, nm) = (received.clone(), connections.clone(), name.to_string());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                cx.fetch_add(1, Ordering::SeqCst);
                let (rx, nm, b) = (rx.clone(), nm.clone(), behaviour.clone());
                tokio::spawn(backend_conn(s, rx, nm, b));
            }
        });
        Backend {
            addr,
            name: name.into(),
            received,
            connections,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    /// A port with nothing listening (bound then closed).
    pub async fn dead_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    }
}

async fn backend_conn(mut s: TcpStream, rx: Arc<Mutex<Vec<Vec<u8>>>>, name: String, b: Behaviour) {
    if let Behaviour::Close = b {
        return;
    }
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut s, &mut buf).await else {
            return;
        };
        rx.lock().expect("lock").push(req.clone());
        let keep = !String::from_utf8_lossy(&req)
            .to_ascii_lowercase()
            .contains("connection: close")
            && !req.windows(8).any(|w| w == b"HTTP/1.0");
        let conn_hdr = if keep { "" } else { "Connection: close\r\n" };
        let out = match &b {
            Behaviour::Redirect(to) => {
                let me = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n{conn_hdr}\r\n",
                    to.replace("SELF", &me)
                )
                .into_bytes()
            }
            Behaviour::Garbage => {
                let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await;
                return;
            }
            Behaviour::Big(n) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n{conn_hdr}\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'b'; 64 * 1024];
                let mut left = *n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    if s.write_all(&chunk[..k]).await.is_err() {
                        return;
                    }
                    left -= k;
                }
                if !keep {
                    return;
                }
                continue;
            }
            Behaviour::Upgrade => {
                let h = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
                if s.write_all(h).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                return;
            }
            Behaviour::CloseAfterResponse => {
                let mut o = format!(
                    "HTTP/1.1 200 OK\r\nX-Backend: {name}\r\nContent-Length: {}\r\n\r\n",
                    req.len()
                )
                .into_bytes();
                o.extend_from_slice(&req);
                let _ = s.write_all(&o).await;
                return;
            }
            Behaviour::Echo => {
                let mut o = format!(
                    "HTTP/1.1 200 OK\r\nX-Backend: {name}\r\nContent-Length: {}\r\n{conn_hdr}\r\n",
                    req.len()
                )
                .into_bytes();
                o.extend_from_slice(&req);
                o
            }
            Behaviour::Status(c) => format!(
                "HTTP/1.1 {c} Whatever\r\nX-Backend: {name}\r\nContent-Length: 6\r\n{conn_hdr}\r\nstatus"
            )
            .into_bytes(),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Behaviour::Close => return,
            Behaviour::Slow(n) => {
                let head = format!("HTTP/1.1 200 OK\r\nX-Backend: {name}\r\nContent-Length: {n}\r\n{conn_hdr}\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..*n {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                }
                if !keep {
                    return;
                }
                continue;
            }
            Behaviour::Headers(hs) => {
                let mut o = format!("HTTP/1.1 200 OK\r\nX-Backend: {name}\r\n");
                for (k, v) in hs {
                    o.push_str(&format!("{k}: {v}\r\n"));
                }
                o.push_str(&format!("Content-Length: 2\r\n{conn_hdr}\r\nok"));
                o.into_bytes()
            }
        };
        if s.write_all(&out).await.is_err() || !keep {
            return;
        }
    }
}

/// Read one request (head + Content-Length or chunked body, raw) from `s`.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let cl: Option<usize> = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .map(|v| v.trim().parse().unwrap_or(0))
    });
    let chunked = head.contains("transfer-encoding: chunked");
    let total = if let Some(cl) = cl {
        head_end + cl
    } else if chunked {
        loop {
            if let Some(i) = find(&buf[head_end..], b"0\r\n\r\n") {
                break head_end + i + 5;
            }
            let mut tmp = [0u8; 4096];
            let n = s.read(&mut tmp).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    } else {
        head_end
    };
    while buf.len() < total {
        let mut tmp = [0u8; 65536];
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let req = buf[..total].to_vec();
    buf.drain(..total);
    Some(req)
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A parsed response from the raw client.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one response from `s` (Content-Length, chunked, or until close). `head_only` for HEAD.
pub async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Option<Resp> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut tmp = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?.to_string();
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        })
        .collect();
    buf.drain(..head_end);
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let body = if head_only || status == 100 || status == 204 || status == 304 {
        Vec::new()
    } else if let Some(cl) = get("content-length") {
        let cl: usize = cl.parse().ok()?;
        while buf.len() < cl {
            let mut tmp = [0u8; 65536];
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..cl).collect()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                let mut tmp = [0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            };
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let mut tmp = [0u8; 65536];
                let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            out.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
        out
    } else {
        let mut out = std::mem::take(buf);
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        out
    };
    Some(Resp {
        status,
        status_line,
        headers,
        body,
    })
}

/// Send raw bytes on a new connection and read one response.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(bytes).await.ok()?;
    let mut buf = Vec::new();
    let head = bytes.starts_with(b"HEAD ");
    loop {
        // Interim 1xx answers (100 Continue) are skipped: the final response counts.
        let r = read_response(&mut s, &mut buf, head).await?;
        if !(100..200).contains(&r.status) {
            return Some(r);
        }
    }
}

/// `GET path` with `Host: host` over HTTP/1.1, one connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Resp {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("response")
}

/// True when the peer closed the connection (EOF) within a few seconds.
pub async fn closed(s: &mut TcpStream) -> bool {
    let mut tmp = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The request line + headers (lowercased names) the backend received in request `i`.
pub fn head_of(req: &str) -> (String, Vec<(String, String)>) {
    let head = req.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (line, headers)
}

pub mod conf_api {
    pub use nginx_rs::conf::parser::Parsed;
    pub use nginx_rs::conf::{Arg, ConfError, Directive, Quote, SourceFile, Span};
}

pub mod backend;
pub mod client;
pub mod known;
pub mod mini;
pub mod nginx;
