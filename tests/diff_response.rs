//! Differential test of the response path: real nginx and nginx-rs, the same config, the same
//! backends; the client must get the same status, header set and body from both.
//!
//! Each case is a backend with its own answer (status, headers, body, or no answer at all) behind
//! its own location. Normalisations, only what must differ:
//! - `Date` values become `<date>` (the clock moves); `Server` values become `<server>` (nginx says
//!   `nginx/1.22.1`, nginx-rs `nginx-rs`, as issue 3 asks);
//! - for error pages the proxy generates itself (502 and the like), the body and its
//!   `Content-Length` are not compared (the footer names the server); status and `Content-Type`
//!   are;
//! - header lines are compared as a sorted multiset of `Name: value` (names case-insensitively,
//!   since the proxy re-emits them: nginx writes its own `Content-Type` etc.);
//! - a `Connection` header that states the protocol's default (`keep-alive` to an HTTP/1.1
//!   client, `close` to HTTP/1.0) is dropped: nginx always writes it, hyper-based servers leave
//!   it out, the client sees no difference. Whether connections are really kept or closed is
//!   compared in tests/diff_limits.rs.
//!
//! Where nginx-rs is known to differ, the case is in [`KNOWN_DIFFERENCES`] with the reason.

mod support;

use support::backend::{Backend, Close, Reply};
use support::client::{exchange, Exchange};
use support::known::{assert_only_known, Difference};

/// Known differences of nginx-rs from nginx 1.22 here: (case, how it differs).
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];
use support::nginx::{skip_unless, start, Flavor, Options, Server};

/// One backend behaviour and the request that reaches it.
struct Case {
    name: &'static str,
    backend: fn() -> Backend,
    /// Request line and headers; `{LOC}` is the case's location prefix.
    request: &'static str,
    /// The proxy answers on its own (error page): compare status and Content-Type only.
    proxy_generated: bool,
}

const GET: &str = "GET {LOC} HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn cases() -> Vec<Case> {
    fn c(name: &'static str, backend: fn() -> Backend, request: &'static str) -> Case {
        Case {
            name,
            backend,
            request,
            proxy_generated: false,
        }
    }
    vec![
        c("plain_200", || Backend::named("hello"), GET),
        c(
            "plain_http10_client",
            || Backend::named("hello"),
            "GET {LOC} HTTP/1.0\r\n\r\n",
        ),
        c(
            "head",
            || Backend::named("hello"),
            "HEAD {LOC} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        c(
            "hidden_headers",
            || {
                Backend::builder()
                    .text("x")
                    .header("Server", "backend/1.0")
                    .header("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
                    .header("X-Pad", "avoid browser bug")
                    .header("X-Accel-Buffering", "no")
                    .header("X-Accel-Expires", "10")
                    .header("X-Kept", "yes")
                    .start()
            },
            GET,
        ),
        c(
            "hop_by_hop_from_backend",
            || {
                Backend::builder()
                    .text("x")
                    .header("Keep-Alive", "timeout=5")
                    .header("X-Kept", "yes")
                    .start()
            },
            GET,
        ),
        c(
            "set_cookie_twice",
            || {
                Backend::builder()
                    .text("x")
                    .header("Set-Cookie", "a=1; Path=/")
                    .header("Set-Cookie", "b=2")
                    .header("Cache-Control", "no-cache")
                    .header("ETag", "\"abc\"")
                    .start()
            },
            GET,
        ),
        c(
            "status_201",
            || Backend::builder().status(201).text("made").start(),
            GET,
        ),
        c("status_204", || Backend::builder().status(204).start(), GET),
        c(
            "status_301_location",
            || {
                Backend::builder()
                    .status(301)
                    .header("Location", "http://elsewhere.test/x")
                    .text("moved")
                    .start()
            },
            GET,
        ),
        c(
            "status_404",
            || Backend::builder().status(404).text("nope").start(),
            GET,
        ),
        c(
            "status_500",
            || Backend::builder().status(500).text("oops").start(),
            GET,
        ),
        c(
            "status_503",
            || Backend::builder().status(503).text("busy").start(),
            GET,
        ),
        c(
            "large_body",
            || Backend::builder().reply(Reply::Generated(300_000)).start(),
            GET,
        ),
        c(
            "backend_closes_after_response",
            || {
                Backend::builder()
                    .text("bye")
                    .close(Close::AfterResponse)
                    .start()
            },
            GET,
        ),
        Case {
            name: "backend_closes_without_response",
            backend: || Backend::builder().close(Close::WithoutResponse).start(),
            request: GET,
            proxy_generated: true,
        },
        Case {
            name: "backend_not_listening",
            // Listen, note the port, stop: nothing accepts there any more.
            backend: || Backend::builder().start(),
            request: GET,
            proxy_generated: true,
        },
    ]
}

/// The config: one location per case, `/cN/`, each to its backend.
fn http_config(listen: u16, ports: &[u16]) -> String {
    let locations: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!("        location /c{i}/ {{\n            proxy_pass http://127.0.0.1:{p};\n        }}\n")
        })
        .collect();
    format!(
        "    # nginx 1.22's default, explicit: current nginx and nginx-rs default to 1.1.\n    \
         proxy_http_version 1.0;\n\n    server {{\n        listen 127.0.0.1:{listen};\n        \
         server_name localhost;\n\n{locations}    }}\n"
    )
}

/// What the client got, normalised.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: Option<u16>,
    headers: Vec<String>,
    /// The body as text if short, else its length and CRC-32 (readable on mismatch).
    body: Option<String>,
}

fn summarise(body: &[u8]) -> String {
    if body.len() <= 200 {
        String::from_utf8_lossy(body).into_owned()
    } else {
        format!(
            "<{} bytes, crc32 {:08x}>",
            body.len(),
            crc32fast::hash(body)
        )
    }
}

fn normalise(ex: &Exchange, proxy_generated: bool, http10: bool) -> Seen {
    let Some(resp) = &ex.response else {
        return Seen {
            status: None,
            headers: Vec::new(),
            body: None,
        };
    };
    let mut headers: Vec<String> = resp
        .headers
        .iter()
        .filter_map(|(n, v)| {
            let name = n.to_ascii_lowercase();
            if name == "connection" {
                let default = if http10 { "close" } else { "keep-alive" };
                if v.eq_ignore_ascii_case(default) {
                    return None;
                }
            }
            let value = match name.as_str() {
                "date" => "<date>",
                "server" => "<server>",
                "content-length" if proxy_generated => return None,
                _ => v.as_str(),
            };
            Some(format!("{name}: {value}"))
        })
        .collect();
    headers.sort();
    Seen {
        status: Some(resp.status),
        headers,
        body: (!proxy_generated).then(|| summarise(&resp.body)),
    }
}

fn observe(server: &Server, case: &Case, index: usize) -> Seen {
    let request = case.request.replace("{LOC}", &format!("/c{index}/"));
    let http10 = request.contains(" HTTP/1.0\r\n");
    normalise(
        &exchange(server.addr(), request.as_bytes()),
        case.proxy_generated,
        http10,
    )
}

/// Starts one backend per case (dropping the not-listening one) and returns those kept alive.
fn start_backends(cases: &[Case]) -> (Vec<Backend>, Vec<u16>) {
    let mut alive = Vec::new();
    let mut ports = Vec::new();
    for case in cases {
        let b = (case.backend)();
        ports.push(b.port());
        if case.name == "backend_not_listening" {
            drop(b);
        } else {
            alive.push(b);
        }
    }
    (alive, ports)
}

fn start_proxy(flavor: Flavor, ports: &[u16]) -> Option<Server> {
    start_proxy_with(flavor, ports, "")
}

/// Same, with `extra` http-level directives appended (for the harness's own checks).
fn start_proxy_with(flavor: Flavor, ports: &[u16], extra: &str) -> Option<Server> {
    skip_unless(
        start(flavor, Options::default(), &|port| {
            http_config(port, ports) + extra
        }),
        flavor,
    )
}

/// Every case whose normalised responses from `a` and `b` differ.
fn compare(a: &Server, b: &Server, cases: &[Case]) -> Vec<Difference> {
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (x, y) = (observe(a, case, i), observe(b, case, i));
        if x != y {
            wrong.push(Difference {
                case: case.name.to_string(),
                detail: format!(
                    "case {}:\n  {:<8} {x:?}\n  {:<8} {y:?}",
                    case.name,
                    a.flavor().name(),
                    b.flavor().name()
                ),
            });
        }
    }
    wrong
}

#[test]
fn responses_are_valid_against_nginx() {
    let cases = cases();
    let (_backends, ports) = start_backends(&cases);
    let Some(nginx) = start_proxy(Flavor::Nginx, &ports) else {
        return;
    };
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let seen = observe(&nginx, case, i);
        if std::env::var_os("DIFF_DUMP").is_some() {
            eprintln!("{}: {:?}", case.name, seen);
        }
        let status_ok = match seen.status {
            Some(s) if case.proxy_generated => s == 502,
            Some(_) => true,
            None => false,
        };
        if !status_ok {
            wrong.push(format!("case {}: {seen:?}", case.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nstderr:\n{}",
        wrong.join("\n"),
        nginx.stderr()
    );
}

#[test]
fn nginx_against_nginx_is_identical() {
    let cases = cases();
    let (_backends, ports) = start_backends(&cases);
    let Some(a) = start_proxy(Flavor::Nginx, &ports) else {
        return;
    };
    let Some(b) = start_proxy(Flavor::Nginx, &ports) else {
        return;
    };
    let wrong = compare(&a, &b, &cases);
    let details: Vec<&str> = wrong.iter().map(|d| d.detail.as_str()).collect();
    assert!(wrong.is_empty(), "{}", details.join("\n"));
}

#[test]
fn comparison_detects_a_header_difference() {
    let cases = cases();
    let (_backends, ports) = start_backends(&cases);
    let Some(a) = start_proxy(Flavor::Nginx, &ports) else {
        return;
    };
    let Some(b) = start_proxy_with(Flavor::Nginx, &ports, "proxy_hide_header X-Kept;") else {
        return;
    };
    let wrong = compare(&a, &b, &cases);
    let names: Vec<&str> = wrong.iter().map(|d| d.case.as_str()).collect();
    assert_eq!(names, ["hidden_headers", "hop_by_hop_from_backend"]);
}

#[test]
fn nginx_rs_responds_like_nginx() {
    let cases = cases();
    let (_backends, ports) = start_backends(&cases);
    let Some(nginx) = start_proxy(Flavor::Nginx, &ports) else {
        return;
    };
    let Some(rs) = start_proxy(Flavor::NginxRs, &ports) else {
        return;
    };
    let wrong = compare(&nginx, &rs, &cases);
    assert_only_known(
        &wrong,
        KNOWN_DIFFERENCES,
        &format!("nginx-rs stderr:\n{}", rs.stderr()),
    );
}
