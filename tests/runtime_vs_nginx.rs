//! Differential tests against real nginx (skipped with a printed reason when it is not installed):
//! the same proxy config, the same kind of echo backend, the same bytes from the client. Asserts the
//! backend received the same request line and header set, and the client the same status. For
//! malformed input: the same status and nothing forwarded, except the documented places where
//! hyper's parser answers differently (see `runtime::server`).

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nginx_rs::plan::*;
use support::*;

const NGINX: &str = "/usr/sbin/nginx";

struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM first: a killed master leaves its workers behind.
        support::nginx::stop_child(&mut self.child);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start_nginx(backend: SocketAddr) -> Option<Nginx> {
    start_nginx_with(&format!(
        "  large_client_header_buffers 4 1k;\n  server {{\n    listen 127.0.0.1:PORT;\n    server_name localhost;\n    location / {{\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_pass http://{backend};\n    }}\n    location /with-uri/ {{ proxy_pass http://{backend}/new/; }}\n  }}\n"
    ))
    .await
}

/// Run nginx with `http_body` inside `http { }`; `PORT` in it is replaced by a free port.
async fn start_nginx_with(http_body: &str) -> Option<Nginx> {
    if !std::path::Path::new(NGINX).exists() {
        eprintln!("SKIP: {NGINX} not installed");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = format!(
        "worker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n{}}}\n",
        http_body.replace("PORT", &port.to_string())
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("write conf");
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg(format!(
            "daemon off; master_process on; pid {}/nginx.pid; error_log stderr;",
            dir.path().display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some(Nginx {
                child,
                addr,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("SKIP: nginx did not start");
    None
}

/// The same configuration as a Plan (nginx 1.22 defaults: HTTP/1.0 upstream, Connection close).
async fn start_ours(backend: SocketAddr) -> Proxy {
    let up = Arc::new(Upstream {
        implicit: true,
        ..Arc::try_unwrap(upstream(&backend.to_string(), &[backend])).expect("fresh")
    });
    let mut pass = proxy_conf(&up, None);
    let mut hs = vec![(
        http::HeaderName::from_static("x-forwarded-for"),
        tpl(&["$proxy_add_x_forwarded_for"]),
    )];
    hs.extend(default_headers());
    pass.set_headers = Arc::new(hs);
    let with_uri = proxy_conf(&up, Some("/new/"));
    let mut c = base_loc_conf();
    c.client.large_header_buffers = (4, 1024);
    let s = server_with_conf(
        vec![ServerName::Exact("localhost".into())],
        vec![
            loc(prefix("/"), Some(pass), vec![]),
            loc(prefix("/with-uri/"), Some(with_uri), vec![]),
        ],
        c,
    );
    Proxy::start(plan(vec![s], 0, vec![up])).await
}

/// Request line, sorted (name, value) pairs, body.
type Seen = (String, Vec<(String, String)>, String);

/// What the backend saw, in a comparable form: request line and sorted (name, value) pairs.
fn seen(b: &Backend, before: usize) -> Option<Seen> {
    let reqs = b.requests();
    let r = reqs.get(before)?;
    let (line, mut h) = head_of(r);
    h.sort();
    let body = r
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((line, h, body))
}

async fn send(addr: SocketAddr, req: &[u8]) -> Option<u16> {
    raw(addr, req).await.map(|r| r.status)
}

const VALID: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET /p HTTP/1.0\r\nHost: LocalHost:8080\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost.\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8, 9.9.9.9\r\nConnection: close\r\n\r\n",
    "GET /a/../b/./c//d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /%7Euser/%41 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /with-uri/x/../y?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /with-uri/a%20b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /with-uri/%7E HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET http://localhost/abs?x HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello",
    "POST /chunk HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    "PUT /empty HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nConnection: close, TE\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nX_Under: 1\r\nX.Dot: 2\r\nX-Ok: 3\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n",
    "DELETE /item/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "OPTIONS /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /a%2fb HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /?a=%2e%2e/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\nAccept: */*\r\nConnection: close\r\n\r\n",
];

#[tokio::test]
async fn valid_requests_reach_the_backend_as_nginx_sends_them() {
    let bn = Backend::spawn("n", Behaviour::Echo).await;
    let bo = Backend::spawn("o", Behaviour::Echo).await;
    let Some(ng) = start_nginx(bn.addr).await else {
        return;
    };
    let ours = start_ours(bo.addr).await;
    let mut diffs = Vec::new();
    for req in VALID {
        let (n0, o0) = (bn.requests().len(), bo.requests().len());
        let sn = send(ng.addr, req.as_bytes()).await;
        let so = send(ours.addr, req.as_bytes()).await;
        // Backend ports differ, so the Host value ($proxy_host) differs by the port only.
        let norm = |s: Option<Seen>, port: u16| {
            s.map(|(l, h, b)| {
                let h: Vec<_> = h
                    .into_iter()
                    .map(|(k, v)| (k, v.replace(&port.to_string(), "PORT")))
                    .collect();
                (l, h, b)
            })
        };
        let wn = norm(seen(&bn, n0), bn.addr.port());
        let wo = norm(seen(&bo, o0), bo.addr.port());
        if sn != so || wn != wo {
            diffs.push(format!(
                "{req:?}\n  nginx:    {sn:?} {wn:?}\n  nginx-rs: {so:?} {wo:?}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        VALID.len(),
        diffs.join("\n")
    );
}

/// Malformed input and nginx's status. `Some(code)` in the third column: nginx-rs answers this
/// instead because hyper's parser decides first (documented in `runtime::server`).
const MALFORMED: &[(&str, Option<u16>)] = &[
    ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", None),
    ("GET / HTTP/3.1\r\nHost: a\r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", None),
    ("GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("get / HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a\r\nBad\0Name: x\r\n\r\n", None),
    ("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: \r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", None),
    ("GET / HTTP/1.1\r\n\r\n", None),
    ("GET /%2e%2e/ HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("GET /a/../../b HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", None),
    ("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", None),
    ("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", None),
    ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("GET / FOO/1.1\r\nHost: a\r\n\r\n", None),
    ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n", None),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", None),
    // hyper's parser answers first: a line without a colon (nginx ignores it: not in this corpus).
];

#[tokio::test]
async fn malformed_requests_same_answer_as_nginx_and_never_forwarded() {
    let bn = Backend::spawn("n", Behaviour::Echo).await;
    let bo = Backend::spawn("o", Behaviour::Echo).await;
    let Some(ng) = start_nginx(bn.addr).await else {
        return;
    };
    let ours = start_ours(bo.addr).await;
    let mut diffs = Vec::new();
    for (req, deviation) in MALFORMED {
        let o0 = bo.requests().len();
        let sn = send(ng.addr, req.as_bytes()).await;
        let so = send(ours.addr, req.as_bytes()).await;
        let want = deviation.or(sn);
        let forwarded = bo.requests().len() > o0;
        if so != want || (forwarded && deviation.is_none()) {
            diffs.push(format!(
                "{req:?}: nginx {sn:?}, nginx-rs {so:?}, forwarded {forwarded}"
            ));
        }
        assert!(
            sn.is_some_and(|s| s >= 400),
            "nginx accepted {req:?}: corpus is wrong"
        );
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Location and server choice, compared through a tag header each location sets.
#[tokio::test]
async fn routing_matches_nginx() {
    let bn = Backend::spawn("n", Behaviour::Echo).await;
    let bo = Backend::spawn("o", Behaviour::Echo).await;
    let locs: &[(&str, &str)] = &[
        ("/", "root"),
        ("= /", "exact-root"),
        ("/images/", "images"),
        ("^~ /static/", "static"),
        ("~ \\.(gif|jpg)$", "img"),
        ("~* \\.PNG$", "png"),
        ("/app/", "app"),
        ("= /app/exact", "app-exact"),
        ("/app/deep/", "app-deep"),
        ("~ ^/app/.*\\.txt$", "txt"),
    ];
    let mut http = String::from(
        "  server {\n    listen 127.0.0.1:PORT default_server;\n    server_name localhost;\n",
    );
    for (m, tag) in locs {
        http.push_str(&format!(
            "    location {m} {{ proxy_set_header X-Tag {tag}; proxy_pass http://{}; }}\n",
            bn.addr
        ));
    }
    http.push_str(&format!(
        "  }}\n  server {{\n    listen 127.0.0.1:PORT;\n    server_name *.example.com www.example.* ~^(?<sub>[a-z]+)\\.re\\.org$;\n    location / {{ proxy_set_header X-Tag srv2-$sub; proxy_pass http://{}; }}\n  }}\n",
        bn.addr
    ));
    let Some(ng) = start_nginx_with(&http).await else {
        return;
    };

    let up = upstream("backend", &[bo.addr]);
    let tagged = |tag: &str| {
        let mut c = proxy_conf(&up, None);
        let mut hs = vec![(http::HeaderName::from_static("x-tag"), tpl(&[tag]))];
        hs.extend(default_headers());
        c.set_headers = Arc::new(hs);
        Some(c)
    };
    let m = |s: &str| -> LocMatch {
        if let Some(p) = s.strip_prefix("= ") {
            LocMatch::Exact(p.into())
        } else if let Some(p) = s.strip_prefix("^~ ") {
            LocMatch::Prefix {
                path: p.into(),
                no_regex: true,
            }
        } else if let Some(r) = s.strip_prefix("~* ") {
            LocMatch::Regex(Box::new(regex(&r.replace("\\\\", "\\"), true, &[])))
        } else if let Some(r) = s.strip_prefix("~ ") {
            LocMatch::Regex(Box::new(regex(&r.replace("\\\\", "\\"), false, &[])))
        } else {
            prefix(s)
        }
    };
    let s1 = server(
        vec![ServerName::Exact("localhost".into())],
        locs.iter()
            .map(|(mm, tag)| loc(m(mm), tagged(tag), vec![]))
            .collect(),
    );
    let mut c2 = proxy_conf(&up, None);
    let mut hs = vec![(
        http::HeaderName::from_static("x-tag"),
        tpl(&["srv2-", "$slot0"]),
    )];
    hs.extend(default_headers());
    c2.set_headers = Arc::new(hs);
    let s2 = server(
        vec![
            ServerName::LeadingWildcard(".example.com".into()),
            ServerName::TrailingWildcard("www.example.".into()),
            ServerName::Regex(regex(r"^(?<sub>[a-z]+)\.re\.org$", false, &[(1, 0)])),
        ],
        vec![loc(prefix("/"), Some(c2), vec![])],
    );
    let mut pl = plan(vec![s1, s2], 0, vec![up.clone()]);
    pl.http.slots = vec![Arc::from("sub")];
    let ours = Proxy::start(pl).await;

    let paths = [
        "/",
        "/x",
        "/images/a",
        "/images/a.gif",
        "/static/a.gif",
        "/a.gif",
        "/a.PNG",
        "/a.png",
        "/app/",
        "/app/exact",
        "/app/exact/",
        "/app/deep/x",
        "/app/deep/x.txt",
        "/app/x.txt",
        "/%61pp/exact",
        "/app/./deep/../exact",
        "//images//x.jpg",
        "/images/%2e%2e/app/x",
        "/APP/x",
        "/static",
        "/static/",
        "/static?a=1",
        "/app/deep",
        "/images",
    ];
    let hosts = [
        "localhost",
        "a.example.com",
        "x.y.example.com",
        "www.example.org",
        "foo.re.org",
        "Foo.RE.org",
        "other",
    ];
    let tag = |b: &Backend, n0: usize| -> String {
        let reqs = b.requests();
        reqs.get(n0)
            .map(|r| {
                let (line, h) = head_of(r);
                let t = h
                    .iter()
                    .find(|(k, _)| k == "x-tag")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                format!("{t} {line}")
            })
            .unwrap_or_else(|| "-".into())
    };
    let mut diffs = Vec::new();
    let mut n = 0;
    for host in hosts {
        for path in paths {
            let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let (n0, o0) = (bn.requests().len(), bo.requests().len());
            // Status and Location (with the listening port normalised).
            let full = |a: SocketAddr| {
                let req = req.clone();
                async move {
                    raw(a, req.as_bytes()).await.map(|r| {
                        let loc = r
                            .header("location")
                            .unwrap_or("")
                            .replace(&a.port().to_string(), "PORT");
                        (r.status, loc)
                    })
                }
            };
            let sn = full(ng.addr).await;
            let so = full(ours.addr).await;
            let (tn, to) = (tag(&bn, n0), tag(&bo, o0));
            n += 1;
            if sn != so || tn != to {
                diffs.push(format!(
                    "{host} {path}: nginx {sn:?} {tn} | nginx-rs {so:?} {to}"
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {n} differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// `proxy_redirect default` on upstream `Location`s, compared with nginx.
#[tokio::test]
async fn location_rewrite_matches_nginx() {
    let targets = [
        "/foo",
        "http://SELF/two/bar",
        "http://SELF/other",
        "http://elsewhere/x",
    ];
    let mut diffs = Vec::new();
    for target in targets {
        let bn = Backend::spawn("n", Behaviour::Redirect(target.into())).await;
        let bo = Backend::spawn("o", Behaviour::Redirect(target.into())).await;
        let http = format!(
            "  server {{\n    listen 127.0.0.1:PORT;\n    server_name localhost;\n    location /one/ {{ proxy_pass http://{b}/two/; }}\n    location / {{ proxy_pass http://{b}; }}\n  }}\n",
            b = bn.addr
        );
        let Some(ng) = start_nginx_with(&http).await else {
            return;
        };
        let up = Arc::new(Upstream {
            implicit: true,
            ..Arc::try_unwrap(upstream(&bo.addr.to_string(), &[bo.addr])).expect("fresh")
        });
        let s = server(
            vec![ServerName::Exact("localhost".into())],
            vec![
                loc(
                    prefix("/one/"),
                    Some(proxy_conf(&up, Some("/two/"))),
                    vec![],
                ),
                loc(prefix("/"), Some(proxy_conf(&up, None)), vec![]),
            ],
        );
        let ours = Proxy::start(plan(vec![s], 0, vec![up])).await;
        for path in ["/one/x", "/x"] {
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let get = |a: SocketAddr, b: SocketAddr| {
                let req = req.clone();
                async move {
                    raw(a, req.as_bytes()).await.map(|r| {
                        r.header("location")
                            .unwrap_or("")
                            .replace(&a.port().to_string(), "PORT")
                            .replace(&b.port().to_string(), "BPORT")
                    })
                }
            };
            let ln = get(ng.addr, bn.addr).await;
            let lo = get(ours.addr, bo.addr).await;
            if ln != lo {
                diffs.push(format!(
                    "{target} via {path}: nginx {ln:?}, nginx-rs {lo:?}"
                ));
            }
        }
        ours.stop().await;
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
