//! Differential tests: the access-log formatter and the stub_status text, compared byte for byte with
//! what real nginx writes for the same request. The runtime is not involved: we give our formatter
//! the values nginx had (the request line we sent, the status and sizes it logged), so what is
//! compared is the format, the escaping and the missing-value rules. Skipped (with a message) when
//! nginx is not installed.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nginx_rs::plan::{LogEscape, LogFormat, Segment, Template, Var};
use nginx_rs::runtime::log::{combined, render_line, VarSource};
use nginx_rs::runtime::status::Snapshot;

const NGINX: &str = "/usr/sbin/nginx";

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: it stops its workers too (SIGKILL would orphan them).
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // already reaped: its pid may belong to someone else now
        }
        // SAFETY: plain kill(2) to our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 0");
    l.local_addr().expect("addr").port()
}

/// Starts nginx with `http_body` inside `http {}` (the port is substituted for `PORT`, the
/// directory for `DIR`). The port is only "free a moment ago": when another test takes it first,
/// nginx fails to bind and exits, and we try again on a new port.
fn start_nginx(http_body: &str) -> Option<Nginx> {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} not installed");
        return None;
    }
    for _ in 0..3 {
        if let Some(n) = try_start_nginx(http_body) {
            return Some(n);
        }
    }
    panic!("nginx did not start listening in three attempts");
}

/// One attempt; `None` when nginx exited (its port was taken).
fn try_start_nginx(http_body: &str) -> Option<Nginx> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
    let port = free_port();
    let body = http_body
        .replace("PORT", &port.to_string())
        .replace("DIR", &dir.path().display().to_string());
    let conf = format!("events {{}}\nhttp {{\n{body}\n}}\n");
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    let pid_path = dir.path().join("nginx.pid");
    let globals = format!(
        "daemon off; master_process on; pid {}; error_log stderr;",
        pid_path.display()
    );
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-g")
        .arg(globals)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    let mut n = Nginx { child, dir, port };
    for _ in 0..400 {
        if let Ok(Some(_)) = n.child.try_wait() {
            return None;
        }
        // nginx writes its pid file only after it bound its listeners: a connection before
        // that could reach whoever took the port.
        if pid_path.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(n);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nginx did not start listening on {port}");
}

/// Sends raw request bytes, reads the response to the end (the request closes the connection).
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    out
}

/// Waits until `path` has `n` lines (nginx writes the access log after the response).
fn lines(path: &Path, n: usize) -> Vec<Vec<u8>> {
    for _ in 0..200 {
        let data = std::fs::read(path).unwrap_or_default();
        let ls: Vec<Vec<u8>> = data
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        if ls.len() >= n {
            return ls;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} never got {n} lines", path.display());
}

/// (request line, Referer, User-Agent) as sent.
type SentRequest<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);

struct Req {
    vars: Vec<(Var, Vec<u8>)>,
}

impl VarSource for Req {
    fn var(&self, var: &Var) -> Option<Cow<'_, [u8]>> {
        self.vars
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, val)| Cow::Borrowed(val.as_slice()))
    }
}

/// The bracketed `$time_local` of an nginx combined line.
fn time_local_of(line: &[u8]) -> Vec<u8> {
    let open = line.iter().position(|&b| b == b'[').expect("[");
    let close = line.iter().position(|&b| b == b']').expect("]");
    line[open + 1..close].to_vec()
}

const REQUEST_LINE: &[u8] = b"GET /p\xc3\xa9th?q=\"x\"&b=\\ HTTP/1.1";
const REFERER: &[u8] = b"http://r/\"q\"\x7f";
const AGENT: &[u8] = b"agent \\ \"007\" caf\xc3\xa9\t";

fn tricky_request() -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(REQUEST_LINE);
    r.extend_from_slice(b"\r\nHost: localhost\r\nReferer: ");
    r.extend_from_slice(REFERER);
    r.extend_from_slice(b"\r\nUser-Agent: ");
    r.extend_from_slice(AGENT);
    r.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    r
}

#[test]
fn combined_line_matches_nginx() {
    let Some(ngx) = start_nginx(
        "access_log DIR/access.log combined;
         server { listen 127.0.0.1:PORT; location / { return 200 \"hello\"; } }",
    ) else {
        return;
    };
    let resp = exchange(ngx.port, &tricky_request());
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    // A request without Referer / User-Agent: the missing-value `-`.
    let resp = exchange(ngx.port, b"GET /none HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert!(resp.starts_with(b"HTTP/1.1 200"));

    let got = lines(&ngx.dir.path().join("access.log"), 2);
    let mut ours = Vec::new();
    let reqs: [SentRequest; 2] = [
        (REQUEST_LINE, Some(REFERER), Some(AGENT)),
        (b"GET /none HTTP/1.0", None, None),
    ];
    for (i, (req, referer, agent)) in reqs.iter().enumerate() {
        let mut vars = vec![
            (Var::RemoteAddr, b"127.0.0.1".to_vec()),
            (Var::TimeLocal, time_local_of(&got[i])),
            (Var::Request, req.to_vec()),
            (Var::Status, b"200".to_vec()),
            (Var::BodyBytesSent, b"5".to_vec()),
        ];
        if let Some(r) = referer {
            vars.push((Var::HttpReferer, r.to_vec()));
        }
        if let Some(a) = agent {
            vars.push((Var::HttpUserAgent, a.to_vec()));
        }
        ours.push(render_line(&combined(), &Req { vars }));
    }
    for (g, o) in got.iter().zip(&ours) {
        assert_eq!(
            String::from_utf8_lossy(o),
            String::from_utf8_lossy(g),
            "our combined line differs from nginx's"
        );
    }
}

#[test]
fn json_escaped_line_matches_nginx() {
    let Some(ngx) = start_nginx(
        "log_format j escape=json '{\"ua\":\"$http_user_agent\",\"ref\":\"$http_referer\",\"user\":\"$remote_user\",\"req\":\"$request\"}';
         access_log DIR/json.log j;
         server { listen 127.0.0.1:PORT; location / { return 204; } }",
    ) else {
        return;
    };
    exchange(ngx.port, &tricky_request());
    let got = lines(&ngx.dir.path().join("json.log"), 1);
    let lit = |s: &str| Segment::Literal(Arc::from(s));
    let fmt = LogFormat {
        name: "j".into(),
        escape: LogEscape::Json,
        template: Template {
            segments: vec![
                lit("{\"ua\":\""),
                Segment::Var(Var::HttpUserAgent),
                lit("\",\"ref\":\""),
                Segment::Var(Var::HttpReferer),
                lit("\",\"user\":\""),
                Segment::Var(Var::RemoteUser),
                lit("\",\"req\":\""),
                Segment::Var(Var::Request),
                lit("\"}"),
            ],
        },
    };
    let ours = render_line(
        &fmt,
        &Req {
            vars: vec![
                (Var::HttpUserAgent, AGENT.to_vec()),
                (Var::HttpReferer, REFERER.to_vec()),
                (Var::Request, REQUEST_LINE.to_vec()),
            ],
        },
    );
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&got[0])
    );
}

fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("number"))
        .collect()
}

#[test]
fn stub_status_text_matches_nginx() {
    let Some(ngx) = start_nginx(
        "access_log off;
         server { listen 127.0.0.1:PORT; location = /s { stub_status; } }",
    ) else {
        return;
    };
    exchange(ngx.port, b"GET /s HTTP/1.0\r\n\r\n");
    let resp = exchange(ngx.port, b"GET /s HTTP/1.0\r\n\r\n");
    let text = String::from_utf8(resp).expect("utf8");
    let body = text.split("\r\n\r\n").nth(1).expect("body").to_string();
    let n = numbers(&body);
    assert_eq!(n.len(), 7, "{body:?}");
    let snap = Snapshot {
        active: n[0],
        accepts: n[1],
        handled: n[2],
        requests: n[3],
        reading: n[4],
        writing: n[5],
        waiting: n[6],
    };
    assert_eq!(snap.stub_status(), body);
}
