//! Differential test of limits, timeouts, failover, pipelining and keepalive: real nginx and
//! nginx-rs with the same per-case config in front of the same backend. For each case the client
//! must see the same sequence of response statuses, the same connection end (closed or kept),
//! and the backend must receive the same number of requests.
//!
//! Each case sends its bytes on one connection and reads until the server closes it or
//! [`WAIT`] passes (a kept-alive connection shows up as "not closed"). Timeouts in the configs
//! are 1s, so the outcome (504, 408, a close) never depends on how fast the machine is.
//! Nothing is normalised: there is nothing here that must differ. Where nginx-rs is known to
//! differ, the case is in [`KNOWN_DIFFERENCES`] with the reason.

mod support;

use std::time::Duration;

use support::backend::Backend;
use support::client::{exchange_until_close, parse_all_responses};
use support::known::{assert_only_known, Difference};
use support::nginx::{skip_unless, start, Flavor, Options, Server};

/// Known differences of nginx-rs from nginx 1.22 here: (case, how it differs).
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// How long the client waits for the server to close the connection.
const WAIT: Duration = Duration::from_secs(4);

/// Which servers the case's upstream lists: the live backend or a port nothing listens on.
#[derive(Clone, Copy, Debug)]
enum Peer {
    Live,
    Dead,
}

struct Case {
    name: &'static str,
    /// Directives at server level.
    server: &'static str,
    /// Directives in `location /`, next to `proxy_pass http://pool;`.
    location: &'static str,
    peers: &'static [Peer],
    backend: fn() -> Backend,
    request: Vec<u8>,
    /// What nginx 1.22 does: statuses in order, connection closed, requests forwarded.
    nginx: (&'static [u16], bool, usize),
}

const LIVE: &[Peer] = &[Peer::Live];

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn echo() -> Backend {
    Backend::echo()
}

fn slow() -> Backend {
    Backend::builder().delay(Duration::from_secs(2)).start()
}

fn unavailable() -> Backend {
    Backend::builder().status(503).text("busy").start()
}

const GET_CLOSE: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
const GET: &str = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let c = |name, server, location, peers, backend: fn() -> Backend, request, nginx| Case {
        name,
        server,
        location,
        peers,
        backend,
        request,
        nginx,
    };
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "u".repeat(1100));
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Long: {}\r\n\r\n",
        "h".repeat(1100)
    );
    let small_buffers = "large_client_header_buffers 2 1k;";
    // A head that outgrows `client_header_buffer_size` moves to a large buffer; one request
    // after another on a kept connection reuse the small one.
    let header_buffer = "client_header_buffer_size 1k;";
    let head_3k = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Long: {}\r\n\r\n{GET_CLOSE}",
        "h".repeat(3000)
    );
    let pipelined_40 = format!("{}{GET_CLOSE}", GET.repeat(39));
    vec![
        // Request bodies and client_max_body_size.
        c("body_over_limit", "", "client_max_body_size 10;", LIVE, echo,
          text("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world"),
          (&[413], true, 0)),
        c("body_at_limit", "", "client_max_body_size 10;", LIVE, echo,
          text("POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhelloworld"),
          (&[200], true, 1)),
        c("chunked_over_limit", "", "client_max_body_size 10;", LIVE, echo,
          text("POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"),
          (&[413], true, 0)),
        c("default_limit_is_1m", "", "", LIVE, echo,
          text("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048577\r\n\r\nabc"),
          // nginx keeps the connection to discard the announced body.
          (&[413], false, 0)),
        c("expect_continue_over_limit", "", "client_max_body_size 10;", LIVE, echo,
          text("POST / HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"),
          // No 100 Continue, so no body comes; the connection stays usable.
          (&[413], false, 0)),
        // Header buffers.
        c("uri_over_header_buffers", small_buffers, "", LIVE, echo, text(&long_uri), (&[414], true, 0)),
        c("header_over_header_buffers", small_buffers, "", LIVE, echo, text(&long_header), (&[400], true, 0)),
        c("head_outgrows_header_buffer", header_buffer, "", LIVE, echo, text(&head_3k),
          (&[200, 200], true, 2)),
        c("pipelined_past_header_buffer", header_buffer, "", LIVE, echo, text(&pipelined_40),
          (&[200; 40], true, 40)),
        // Client timeouts.
        c("client_header_timeout", "client_header_timeout 1s;", "", LIVE, echo,
          text("GET / HTTP/1.1\r\nHost: localhost\r\n"),
          (&[], true, 0)),
        c("client_body_timeout", "", "client_body_timeout 1s;", LIVE, echo,
          text("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhello"),
          (&[], true, 0)),
        // Upstream timeouts and failover.
        c("read_timeout_504", "", "proxy_read_timeout 1s;", LIVE, slow, text(GET_CLOSE), (&[504], true, 1)),
        c("read_timeout_tries_next", "", "proxy_read_timeout 1s;", &[Peer::Live, Peer::Live], slow,
          text(GET_CLOSE), (&[504], true, 2)),
        c("dead_peer_fails_over", "", "", &[Peer::Dead, Peer::Live], echo, text(GET_CLOSE), (&[200], true, 1)),
        c("all_peers_dead", "", "", &[Peer::Dead, Peer::Dead], echo, text(GET_CLOSE), (&[502], true, 0)),
        c("status_503_not_retried", "", "", &[Peer::Live, Peer::Live], unavailable, text(GET_CLOSE),
          (&[503], true, 1)),
        // Pipelining and keepalive.
        c("pipelined_two", "", "", LIVE, echo, text(&format!("{GET}{GET_CLOSE}")), (&[200, 200], true, 2)),
        c("keepalive_requests_2", "", "keepalive_requests 2;", LIVE, echo,
          text(&format!("{GET}{GET}{GET}")), (&[200, 200], true, 2)),
        c("keepalive_timeout_0", "keepalive_timeout 0;", "", LIVE, echo,
          text(&format!("{GET}{GET}")), (&[200], true, 1)),
        c("keepalive_kept_open", "", "", LIVE, echo, text(GET), (&[200], false, 1)),
        c("http10_keepalive_then_close", "", "", LIVE, echo,
          text("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n"),
          (&[200, 200], true, 2)),
        c("head_then_get_pipelined", "", "", LIVE, echo,
          text(&format!("HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n{GET_CLOSE}")),
          (&[200, 200], true, 2)),
    ]
}

fn http_config(listen: u16, case: &Case, live: u16, dead: u16) -> String {
    let peers: String = case
        .peers
        .iter()
        .map(|p| {
            let port = match p {
                Peer::Live => live,
                Peer::Dead => dead,
            };
            format!("        server 127.0.0.1:{port};\n")
        })
        .collect();
    format!(
        "    upstream pool {{\n{peers}    }}\n\n    server {{\n        listen 127.0.0.1:{listen};\n        \
         server_name localhost;\n        {server}\n\n        location / {{\n            \
         proxy_pass http://pool;\n            {location}\n        }}\n    }}\n",
        server = case.server,
        location = case.location,
    )
}

/// What one server did: statuses in order, whether it closed, how many requests it forwarded.
type Outcome = (Vec<u16>, bool, usize);

fn outcome(server: &Server, backend: &Backend, case: &Case) -> Outcome {
    backend.take_received();
    let ex = exchange_until_close(server.addr(), &case.request, WAIT);
    // HEAD responses carry no body: parse them as such when the case starts with one.
    let statuses = if case.request.starts_with(b"HEAD ") {
        head_then_rest(&ex.raw, ex.closed)
    } else {
        parse_all_responses(&ex.raw, ex.closed)
            .iter()
            .map(|r| r.status)
            .collect()
    };
    (statuses, ex.closed, backend.take_received().len())
}

/// Statuses of a HEAD response followed by ordinary ones.
fn head_then_rest(raw: &[u8], at_eof: bool) -> Vec<u16> {
    let Some((first, used)) = support::client::parse_response(raw, true, at_eof) else {
        return Vec::new();
    };
    let mut statuses = vec![first.status];
    statuses.extend(
        parse_all_responses(&raw[used..], at_eof)
            .iter()
            .map(|r| r.status),
    );
    statuses
}

/// A port nothing listens on (bound once by the kernel's choice, then released).
fn dead_port() -> u16 {
    let b = Backend::echo();
    b.port()
}

fn run(case: &Case, flavor: Flavor, backend: &Backend, dead: u16) -> Option<(Server, Outcome)> {
    let live = backend.port();
    let server = skip_unless(
        start(flavor, Options::default(), &|port| {
            http_config(port, case, live, dead)
        }),
        flavor,
    )?;
    let seen = outcome(&server, backend, case);
    Some((server, seen))
}

#[test]
fn cases_are_valid_against_nginx() {
    let dead = dead_port();
    let mut wrong = Vec::new();
    for case in cases() {
        let backend = (case.backend)();
        let Some((nginx, seen)) = run(&case, Flavor::Nginx, &backend, dead) else {
            return;
        };
        let expected = (case.nginx.0.to_vec(), case.nginx.1, case.nginx.2);
        if std::env::var_os("DIFF_DUMP").is_some() {
            eprintln!("{}: {seen:?}", case.name);
        }
        if seen != expected {
            wrong.push(format!(
                "case {}: expected {expected:?}, nginx gave {seen:?}\n{}",
                case.name,
                nginx.stderr()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn nginx_rs_behaves_like_nginx() {
    let dead = dead_port();
    let mut wrong = Vec::new();
    let mut stderr = String::new();
    for case in cases() {
        let backend = (case.backend)();
        let Some((_nginx, a)) = run(&case, Flavor::Nginx, &backend, dead) else {
            return;
        };
        let Some((rs, b)) = run(&case, Flavor::NginxRs, &backend, dead) else {
            return;
        };
        if a != b {
            wrong.push(Difference {
                case: case.name.to_string(),
                detail: format!("case {}:\n  nginx    {a:?}\n  nginx-rs {b:?}", case.name),
            });
            stderr.push_str(&format!("--- {}:\n{}", case.name, rs.stderr()));
        }
    }
    assert_only_known(
        &wrong,
        KNOWN_DIFFERENCES,
        &format!("(statuses, closed, forwarded); nginx-rs stderr per case:\n{stderr}"),
    );
}
