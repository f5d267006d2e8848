//! Issue 6 around `proxy_pass`, against real nginx: `proxy_redirect` (implicit default, `off`, text
//! and regex rules) on `Location` and `Refresh`, relative `Location` made absolute,
//! `proxy_intercept_errors` with `error_page` (URI, `=`, `=code`, `@named`) and `error_page` for the
//! proxy's own 502, and `add_header` with `always`. Status, `Location`, `Refresh`, the added
//! headers and the body must be the same from both. Also `proxy_pass` inside `if`, and `add_header`
//! inherited from the server level (only where a location has none, only for nginx's statuses).

mod support;

use std::net::{SocketAddr, TcpListener};

use support::backend::Backend;
use support::client::{exchange, RawResponse};
use support::nginx::{skip_unless, start, Flavor, Options, Server};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on loopback")
}

struct Backends {
    /// 302 to its own absolute URL, with a Refresh header.
    abs: Backend,
    /// 301 to a relative path.
    rel: Backend,
    /// 302 to another host.
    other: Backend,
    /// 404 with a body.
    missing: Backend,
    /// 500 with a body.
    broken: Backend,
    /// Nothing listens here.
    dead: SocketAddr,
}

fn backends() -> Backends {
    let a = free_addr();
    let abs = Backend::builder()
        .bind(a)
        .status(302)
        .header("Location", &format!("http://{a}/inner/x?q=1"))
        .header("Refresh", &format!("5; url=http://{a}/inner/r"))
        .text("moved")
        .start();
    Backends {
        abs,
        rel: Backend::builder()
            .status(301)
            .header("Location", "/relative/path")
            .text("rel")
            .start(),
        other: Backend::builder()
            .status(302)
            .header("Location", "http://other/deep/z")
            .text("other")
            .start(),
        missing: Backend::builder().status(404).text("backend 404").start(),
        broken: Backend::builder().status(500).text("backend 500").start(),
        dead: free_addr(),
    }
}

fn config(b: &Backends, port: u16) -> String {
    let (abs, rel, other, missing, broken, dead) = (
        b.abs.addr(),
        b.rel.addr(),
        b.other.addr(),
        b.missing.addr(),
        b.broken.addr(),
        b.dead,
    );
    format!(
        r#"
    server_tokens off;
    server {{
        listen 127.0.0.1:{port};
        server_name px.test;
        add_header X-Edge "server-level";
        location /app/ {{ proxy_pass http://{abs}/inner/; }}
        location /same/ {{ proxy_pass http://{abs}; }}
        location /off/ {{ proxy_redirect off; proxy_pass http://{abs}/inner/; }}
        location /rel/ {{ proxy_pass http://{rel}; }}
        location /relnoabs/ {{ absolute_redirect off; proxy_pass http://{rel}; }}
        location /rules/ {{
            proxy_redirect http://{abs}/inner/ /r/;
            proxy_pass http://{abs}/inner/;
        }}
        location /rx/ {{
            proxy_redirect ~^http://other/(.*)$ /o/$1;
            proxy_pass http://{other};
        }}
        location /icpt/ {{
            proxy_intercept_errors on;
            error_page 404 = /fallback;
            proxy_pass http://{missing};
        }}
        location /icpt500/ {{
            proxy_intercept_errors on;
            error_page 500 /fallback;
            proxy_pass http://{broken};
        }}
        location /icptcode/ {{
            proxy_intercept_errors on;
            error_page 404 =410 /fallback;
            proxy_pass http://{missing};
        }}
        location /icptproxy/ {{
            proxy_intercept_errors on;
            error_page 404 = /viaproxy/;
            proxy_pass http://{missing};
        }}
        location /viaproxy/ {{ proxy_pass http://{other}; }}
        location /noicpt/ {{ error_page 404 /fallback; proxy_pass http://{missing}; }}
        location /dead/ {{ error_page 502 = @dead; proxy_pass http://{dead}; }}
        location /dead2/ {{ error_page 502 /fallback; proxy_pass http://{dead}; }}
        location /deadplain/ {{ proxy_pass http://{dead}; }}
        location @dead {{ return 200 "dead fallback uri=$uri method=$request_method\n"; }}
        location /fallback {{ return 200 "fallback uri=$uri method=$request_method\n"; }}
        location /ifp/ {{
            if ($arg_alt) {{ proxy_pass http://{missing}; }}
            proxy_pass http://{rel};
        }}
        location /hdr/ {{
            add_header X-Edge "e-$uri";
            add_header X-Always a always;
            proxy_pass http://{abs}/inner/;
        }}
        location /hdr404/ {{
            add_header X-Edge "e-$uri";
            add_header X-Always a always;
            proxy_pass http://{missing};
        }}
    }}
"#
    )
}

const REQUESTS: &[&str] = &[
    "GET /app/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /same/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /off/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /rel/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /relnoabs/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /rules/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /rx/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /icpt/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /icpt500/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /icptcode/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /icptproxy/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "POST /icptproxy/a HTTP/1.1\r\nHost: px.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    "GET /noicpt/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /dead/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "POST /dead/a HTTP/1.1\r\nHost: px.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    "GET /dead2/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /deadplain/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /ifp/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /ifp/a?alt=1 HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /hdr/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
    "GET /hdr404/a HTTP/1.1\r\nHost: px.test\r\nConnection: close\r\n\r\n",
];

type Seen = (u16, Vec<Option<String>>, String);

fn comparable(r: &RawResponse, port: u16) -> Seen {
    let norm = |s: &str| {
        s.replace(&port.to_string(), "PORT")
            .replace("<center>nginx-rs</center>", "<center>nginx</center>")
    };
    let headers = ["Location", "Refresh", "X-Edge", "X-Always"]
        .iter()
        .map(|h| r.header(h).map(norm))
        .collect();
    (r.status, headers, norm(&r.text()))
}

fn run_all(s: &Server) -> Vec<Option<Seen>> {
    REQUESTS
        .iter()
        .map(|req| {
            exchange(s.addr(), req.as_bytes())
                .response
                .map(|r| comparable(&r, s.port()))
        })
        .collect()
}

#[test]
fn proxy_edge_directives_match_nginx() {
    let b = backends();
    let start_flavor = |flavor| {
        skip_unless(
            start(flavor, Options::default(), &|port| config(&b, port)),
            flavor,
        )
    };
    let Some(ours) = start_flavor(Flavor::NginxRs) else {
        return;
    };
    let Some(nginx) = start_flavor(Flavor::Nginx) else {
        return;
    };
    let theirs = run_all(&nginx);
    let mine = run_all(&ours);
    let diffs: Vec<String> = REQUESTS
        .iter()
        .enumerate()
        .filter(|(i, _)| theirs[*i] != mine[*i])
        .map(|(i, r)| {
            format!(
                "{:?}\n  nginx:    {:?}\n  nginx-rs: {:?}",
                r.lines().next().unwrap_or(""),
                theirs[i],
                mine[i]
            )
        })
        .collect();
    // The error page request behind `error_page 404 = /viaproxy/` went up as GET, also for the POST.
    let methods: Vec<String> = b
        .other
        .received()
        .iter()
        .map(|r| r.method().to_string())
        .collect();
    assert!(
        methods.len() >= 4 && methods.iter().all(|m| m == "GET"),
        "{methods:?}"
    );
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        REQUESTS.len(),
        diffs.join("\n")
    );
}
