//! Access control and real client addresses from several source addresses on loopback
//! (127.0.0.2, 127.0.0.3, ...): `allow`/`deny` with first-match-wins and inheritance, and
//! `set_real_ip_from` with spoofed `X-Forwarded-For` / `X-Real-IP` from trusted and untrusted peers.
//! Each case is asserted on nginx-rs with a fixed expectation, and on real nginx too when it is
//! installed (the same expectation must hold there, so the test cannot drift from nginx).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use support::client::parse_response;
use support::nginx::{skip_unless, start, Flavor, Options, Server};

/// `return` runs in the rewrite phase, before access: the guarded locations have no `return`, and
/// their (static) 404 becomes an internal redirect to `/ok`, which shows `$remote_addr`.
const CONFIG: &str = r#"
    server {
        listen 127.0.0.1:PORT;
        server_name acl.test;
        deny 127.0.0.9;
        allow all;
        error_page 404 =200 /ok;
        location = /ok { internal; return 200 "ok $remote_addr\n"; }
        location / { }
        location /ordered {
            deny 127.0.0.3;
            allow 127.0.0.0/28;
            deny all;
        }
        location /v6only { allow ::1; deny all; }
        location /nested {
            allow 127.0.0.2;
            deny all;
            location /nested/inner { }
        }
        location /returns { deny all; return 200 "return before access\n"; }
    }
    server {
        listen 127.0.0.1:PORT;
        server_name xff.test;
        set_real_ip_from 127.0.0.2;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        error_page 404 =200 /ok;
        location = /ok { internal; return 200 "ok $remote_addr\n"; }
        location / { return 200 "xff $remote_addr via $realip_remote_addr\n"; }
        location /guarded { deny 6.6.6.6; allow all; }
    }
    server {
        listen 127.0.0.1:PORT;
        server_name rec.test;
        set_real_ip_from 127.0.0.2;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;
        location / { return 200 "rec $remote_addr via $realip_remote_addr\n"; }
    }
    server {
        listen 127.0.0.1:PORT;
        server_name realip.test;
        set_real_ip_from 127.0.0.0/30;
        location / { return 200 "xri $remote_addr via $realip_remote_addr\n"; }
    }
"#;

/// (source address, Host, path, extra headers, expected status, expected body or "" for a page).
const CASES: &[(&str, &str, &str, &str, u16, &str)] = &[
    ("127.0.0.1", "acl.test", "/", "", 200, "ok 127.0.0.1\n"),
    ("127.0.0.9", "acl.test", "/", "", 403, ""),
    (
        "127.0.0.2",
        "acl.test",
        "/ordered",
        "",
        200,
        "ok 127.0.0.2\n",
    ),
    ("127.0.0.3", "acl.test", "/ordered", "", 403, ""),
    (
        "127.0.0.7",
        "acl.test",
        "/ordered",
        "",
        200,
        "ok 127.0.0.7\n",
    ),
    ("127.0.0.20", "acl.test", "/ordered", "", 403, ""),
    // The location's own rules replace the server's: 127.0.0.9 passes here.
    (
        "127.0.0.9",
        "acl.test",
        "/ordered",
        "",
        200,
        "ok 127.0.0.9\n",
    ),
    ("127.0.0.1", "acl.test", "/v6only", "", 403, ""),
    // Nested locations inherit the rules of the enclosing one.
    (
        "127.0.0.2",
        "acl.test",
        "/nested/inner",
        "",
        200,
        "ok 127.0.0.2\n",
    ),
    ("127.0.0.4", "acl.test", "/nested/inner", "", 403, ""),
    // `return` answers in the rewrite phase, before the access phase.
    (
        "127.0.0.4",
        "acl.test",
        "/returns",
        "",
        200,
        "return before access\n",
    ),
    // Trusted peer: the header is believed, the rightmost address wins.
    (
        "127.0.0.2",
        "xff.test",
        "/",
        "X-Forwarded-For: 1.1.1.1, 10.0.0.5\r\n",
        200,
        "xff 10.0.0.5 via 127.0.0.2\n",
    ),
    // Recursive: trusted addresses are skipped from the right.
    (
        "127.0.0.2",
        "rec.test",
        "/",
        "X-Forwarded-For: 1.1.1.1, 10.0.0.5\r\n",
        200,
        "rec 1.1.1.1 via 127.0.0.2\n",
    ),
    // Untrusted peer: spoofed header ignored.
    (
        "127.0.0.3",
        "xff.test",
        "/",
        "X-Forwarded-For: 1.1.1.1\r\n",
        200,
        "xff 127.0.0.3 via 127.0.0.3\n",
    ),
    (
        "127.0.0.3",
        "rec.test",
        "/",
        "X-Forwarded-For: 1.1.1.1, 10.0.0.5\r\n",
        200,
        "rec 127.0.0.3 via 127.0.0.3\n",
    ),
    // Access rules see the real address of a trusted hop, but a spoof from an untrusted one
    // cannot get itself denied or allowed.
    (
        "127.0.0.2",
        "xff.test",
        "/guarded",
        "X-Forwarded-For: 6.6.6.6\r\n",
        403,
        "",
    ),
    (
        "127.0.0.3",
        "xff.test",
        "/guarded",
        "X-Forwarded-For: 6.6.6.6\r\n",
        200,
        "ok 127.0.0.3\n",
    ),
    // Several X-Forwarded-For lines make one list.
    (
        "127.0.0.2",
        "rec.test",
        "/",
        "X-Forwarded-For: 2.2.2.2\r\nX-Forwarded-For: 10.1.1.1\r\n",
        200,
        "rec 2.2.2.2 via 127.0.0.2\n",
    ),
    // Garbage in the header: the peer stays.
    (
        "127.0.0.2",
        "xff.test",
        "/",
        "X-Forwarded-For: nonsense\r\n",
        200,
        "xff 127.0.0.2 via 127.0.0.2\n",
    ),
    // X-Real-IP (the default header) from trusted and untrusted peers.
    (
        "127.0.0.1",
        "realip.test",
        "/",
        "X-Real-IP: 203.0.113.7\r\n",
        200,
        "xri 203.0.113.7 via 127.0.0.1\n",
    ),
    (
        "127.0.0.5",
        "realip.test",
        "/",
        "X-Real-IP: 203.0.113.7\r\n",
        200,
        "xri 127.0.0.5 via 127.0.0.5\n",
    ),
];

/// One request from `source` (bound before connecting), read until the server closes.
fn from(source: &str, to: SocketAddr, request: &str) -> Option<(u16, String)> {
    use socket2::{Domain, Socket, Type};
    let src: Ipv4Addr = source.parse().ok()?;
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::from((src, 0)).into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(5)).ok()?;
    let mut stream: std::net::TcpStream = s.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let (r, _) = parse_response(&raw, false, true)?;
    Some((r.status, r.text()))
}

fn check(server: &Server) -> Vec<String> {
    let mut failures = Vec::new();
    for (src, host, path, extra, status, body) in CASES {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        let got = from(src, server.addr(), &req);
        let ok = match &got {
            Some((s, b)) => s == status && (body.is_empty() || b == body),
            None => false,
        };
        if !ok {
            failures.push(format!(
                "{}: from {src} {host}{path}: expected {status} {body:?}, got {got:?}",
                server.flavor().name()
            ));
        }
    }
    failures
}

fn start_flavor(flavor: Flavor) -> Option<Server> {
    skip_unless(
        start(flavor, Options::default(), &|port| {
            CONFIG.replace("PORT", &port.to_string())
        }),
        flavor,
    )
}

#[test]
fn access_and_real_ip_from_several_sources() {
    let mut failures = Vec::new();
    if let Some(ours) = start_flavor(Flavor::NginxRs) {
        failures.extend(check(&ours));
    }
    if let Some(nginx) = start_flavor(Flavor::Nginx) {
        failures.extend(check(&nginx));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
