//! Differential test of the proxy path: real nginx and nginx-rs, the same config, the same echo
//! backend, the same corpus of requests. For every request the backend must receive the same
//! request line, the same header set and the same body from both, and the client must get the
//! same status.
//!
//! Normalisations (only what must differ between the two runs):
//! - the proxy's own listen port, wherever it appears (a `Host: 127.0.0.1:PORT` the client sent,
//!   an absolute-form target) becomes `{PORT}`: each server listens on its own free port;
//! - header lines are compared as a sorted multiset of raw lines (`Name: value` byte for byte,
//!   spacing included), not in order (HTTP does not make it part of the contract; it is printed
//!   on mismatch), except by `nginx_rs_keeps_header_order`, which holds nginx-rs to nginx's
//!   order too. `nginx_rs_forwards_like_nginx` compares header names case-insensitively
//!   (HTTP says they are); `nginx_rs_keeps_header_name_case` compares them exactly, as does
//!   nginx against nginx.
//!
//! Where nginx-rs is known to differ, the case is in [`KNOWN_DIFFERENCES`] with the reason; see
//! `tests/support/known.rs` for how that list is checked (strictly, both ways).
//!
//! Where nginx 1.22 differs from current nginx, the config pins the behaviour both must share:
//! `proxy_http_version 1.0` at http level (1.22's default; current nginx and nginx-rs default to
//! 1.1), and the `/ka/` location uses the explicit keepalive setup (`keepalive`, 1.1,
//! `Connection ""`), which is what nginx-rs does by default.
//!
//! `corpus_is_valid_against_nginx` runs the corpus on nginx alone and checks each case does
//! what it says (status, forwarded or not); `nginx_against_nginx_is_identical` runs two nginx
//! instances through the comparison, which shows the normalisations above are enough.
//! `DIFF_DUMP=1 cargo test --test diff_proxy corpus_is_valid -- --nocapture` prints what nginx
//! sent for every case.

mod support;

use support::backend::{Backend, Received};
use support::client::exchange;
use support::known::{assert_only_known, Difference};
use support::nginx::{skip_unless, start, Flavor, Options, Server};

/// The http-level config both servers run; `listen` is the proxy's port, `backend` the echo's.
fn http_config(listen: u16, backend: u16) -> String {
    format!(
        r#"
    # nginx 1.22's default, explicit: current nginx and nginx-rs default to 1.1.
    proxy_http_version 1.0;

    upstream echo_pool {{
        server 127.0.0.1:{backend};
    }}

    upstream echo_keepalive {{
        server 127.0.0.1:{backend};
        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{listen};
        server_name localhost;

        # proxy_pass without a URI: the client's URI is passed as sent.
        location / {{
            proxy_pass http://127.0.0.1:{backend};
        }}

        # proxy_pass with a URI: the matched prefix is replaced.
        location /uri/ {{
            proxy_pass http://127.0.0.1:{backend}/backend/;
        }}

        location = /exact {{
            proxy_pass http://127.0.0.1:{backend}/exact-target;
        }}

        location ~ ^/regex/ {{
            proxy_pass http://127.0.0.1:{backend};
        }}

        # The walkthrough's location, byte for byte apart from the upstream name.
        location /walk/ {{
            proxy_pass http://echo_pool;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}

        # Upstream keepalive as both nginx and nginx-rs document it.
        location /ka/ {{
            proxy_pass http://echo_keepalive;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}

    server {{
        listen 127.0.0.1:{listen};
        server_name example.com *.example.org;

        location / {{
            proxy_pass http://echo_pool/named/;
            proxy_set_header X-Host $host;
            proxy_set_header X-Server-Name $server_name;
        }}
    }}
"#
    )
}

/// One request of the corpus.
struct Case {
    name: &'static str,
    /// Request line and header lines; `{PORT}` becomes the proxy's port.
    head: &'static [&'static str],
    /// Bytes after the empty line.
    body: &'static str,
    /// The status nginx 1.22 answers (checked by `corpus_is_valid_against_nginx`).
    nginx_status: u16,
    /// Whether nginx forwards it to the backend.
    forwarded: bool,
}

const fn ok(name: &'static str, head: &'static [&'static str], body: &'static str) -> Case {
    Case {
        name,
        head,
        body,
        nginx_status: 200,
        forwarded: true,
    }
}

const fn rejected(
    name: &'static str,
    head: &'static [&'static str],
    body: &'static str,
    nginx_status: u16,
) -> Case {
    Case {
        name,
        head,
        body,
        nginx_status,
        forwarded: false,
    }
}

#[rustfmt::skip]
const CORPUS: &[Case] = &[
    // Request targets: query strings, encodings, dot segments, slashes.
    ok("root", &["GET / HTTP/1.1", "Host: localhost"], ""),
    ok("path_and_query", &["GET /a/b?x=1&y=2 HTTP/1.1", "Host: localhost"], ""),
    ok("encoded_query", &["GET /search?q=a%20b&r=%2F&s=%zz HTTP/1.1", "Host: localhost"], ""),
    ok("empty_query", &["GET /x? HTTP/1.1", "Host: localhost"], ""),
    ok("repeated_args", &["GET /walk/?a=1&a=2&b HTTP/1.1", "Host: localhost"], ""),
    ok("percent_encoded_path", &["GET /a%20b/%41%7e HTTP/1.1", "Host: localhost"], ""),
    ok("encoded_slash", &["GET /a%2Fb HTTP/1.1", "Host: localhost"], ""),
    ok("dot_segments_passed_as_sent", &["GET /a/./b/../c HTTP/1.1", "Host: localhost"], ""),
    ok("double_slashes", &["GET //a//b HTTP/1.1", "Host: localhost"], ""),
    ok("fragment_in_target", &["GET /x#frag HTTP/1.1", "Host: localhost"], ""),
    ok("uri_prefix_replaced", &["GET /uri/x/y?z=1 HTTP/1.1", "Host: localhost"], ""),
    ok("uri_prefix_only", &["GET /uri/ HTTP/1.1", "Host: localhost"], ""),
    ok("uri_encoded_reescaped", &["GET /uri/a%20b%41 HTTP/1.1", "Host: localhost"], ""),
    ok("uri_dot_segments", &["GET /uri/a/../b/./c HTTP/1.1", "Host: localhost"], ""),
    ok("uri_dots_leave_location", &["GET /uri/../walk/ HTTP/1.1", "Host: localhost"], ""),
    ok("uri_encoded_dots", &["GET /uri/%2e%2e/ka/ HTTP/1.1", "Host: localhost"], ""),
    ok("exact_location", &["GET /exact?q=1 HTTP/1.1", "Host: localhost"], ""),
    ok("regex_location", &["GET /regex/a%20b?c HTTP/1.1", "Host: localhost"], ""),
    rejected("climb_above_root", &["GET /../x HTTP/1.1", "Host: localhost"], "", 400),
    // The walkthrough's headers: X-Forwarded-For chains, spoofed client headers.
    ok("walk_plain", &["GET /walk/ HTTP/1.1", "Host: localhost"], ""),
    ok("walk_xff_chain", &["GET /walk/ HTTP/1.1", "Host: localhost", "X-Forwarded-For: 10.0.0.1, 10.0.0.2"], ""),
    ok("walk_xff_two_lines", &["GET /walk/ HTTP/1.1", "Host: localhost", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-For: 10.0.0.2"], ""),
    ok("walk_xff_empty", &["GET /walk/ HTTP/1.1", "Host: localhost", "X-Forwarded-For:"], ""),
    ok("walk_spoofed_real_ip_proto", &["GET /walk/ HTTP/1.1", "Host: localhost", "X-Real-IP: 1.2.3.4", "X-Forwarded-Proto: https"], ""),
    ok("walk_http10_no_host", &["GET /walk/ HTTP/1.0"], ""),
    ok("walk_host_with_port", &["GET /walk/ HTTP/1.1", "Host: localhost:8080"], ""),
    ok("walk_host_real_port", &["GET /walk/ HTTP/1.1", "Host: 127.0.0.1:{PORT}"], ""),
    ok("walk_host_upper_case", &["GET /walk/ HTTP/1.1", "Host: LocalHost"], ""),
    ok("walk_host_trailing_dot", &["GET /walk/ HTTP/1.1", "Host: localhost."], ""),
    ok("plain_http10_no_host", &["GET /x HTTP/1.0"], ""),
    // Server selection by Host.
    ok("server_exact_name", &["GET /p?q HTTP/1.1", "Host: example.com"], ""),
    ok("server_wildcard", &["GET /p HTTP/1.1", "Host: www.example.org"], ""),
    ok("server_wildcard_case_dot_port", &["GET /p HTTP/1.1", "Host: WWW.Example.ORG.:81"], ""),
    ok("server_unknown_host_default", &["GET /p HTTP/1.1", "Host: unknown.test"], ""),
    // Absolute-form targets: the host comes from the target.
    ok("absolute_form", &["GET http://example.com/abs?q=1 HTTP/1.1", "Host: other.test"], ""),
    ok("absolute_form_default_server", &["GET http://localhost:{PORT}/walk/x HTTP/1.1", "Host: localhost"], ""),
    // Methods.
    ok("head", &["HEAD / HTTP/1.1", "Host: localhost"], ""),
    ok("head_walk", &["HEAD /walk/ HTTP/1.1", "Host: localhost"], ""),
    ok("options", &["OPTIONS /x HTTP/1.1", "Host: localhost"], ""),
    ok("delete", &["DELETE /x HTTP/1.1", "Host: localhost"], ""),
    ok("custom_method", &["PURGE /x HTTP/1.1", "Host: localhost"], ""),
    // Bodies: sized, chunked (buffered: the backend gets Content-Length), empty, HTTP/1.0.
    ok("post_sized", &["POST /walk/ HTTP/1.1", "Host: localhost", "Content-Type: text/plain", "Content-Length: 11"], "hello world"),
    ok("post_chunked", &["POST /walk/ HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked"], "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    ok("post_chunked_ext_trailer", &["POST / HTTP/1.1", "Host: localhost", "Transfer-Encoding: Chunked"], "3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"),
    ok("put_empty", &["PUT /x HTTP/1.1", "Host: localhost", "Content-Length: 0"], ""),
    ok("post_http10", &["POST /x HTTP/1.0", "Content-Length: 3"], "abc"),
    ok("content_length_leading_zeros", &["POST /x HTTP/1.1", "Host: localhost", "Content-Length: 003"], "abc"),
    ok("expect_continue", &["POST /x HTTP/1.1", "Host: localhost", "Expect: 100-continue", "Content-Length: 4"], "body"),
    ok("ka_post_chunked", &["POST /ka/ HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked"], "4\r\nbody\r\n0\r\n\r\n"),
    // Hop-by-hop headers and Upgrade.
    ok("connection_close", &["GET / HTTP/1.1", "Host: localhost", "Connection: close"], ""),
    ok("hop_by_hop_set", &["GET / HTTP/1.1", "Host: localhost", "Connection: keep-alive, X-Custom", "X-Custom: v", "Keep-Alive: timeout=5", "TE: trailers", "Proxy-Connection: keep-alive", "Trailer: X-T"], ""),
    ok("upgrade_websocket", &["GET /walk/ HTTP/1.1", "Host: localhost", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"], ""),
    ok("ka_plain", &["GET /ka/x HTTP/1.1", "Host: localhost"], ""),
    ok("ka_client_close", &["GET /ka/x HTTP/1.1", "Host: localhost", "Connection: close"], ""),
    ok("ka_http10_keepalive", &["GET /ka/x HTTP/1.0", "Connection: keep-alive"], ""),
    ok("ka_upgrade", &["GET /ka/ws HTTP/1.1", "Host: localhost", "Connection: upgrade", "Upgrade: websocket"], ""),
    // Other header shapes.
    ok("duplicate_custom_headers", &["GET / HTTP/1.1", "Host: localhost", "X-Dup: a", "X-Dup: b", "x-dup: c"], ""),
    ok("two_cookie_lines", &["GET /walk/ HTTP/1.1", "Host: localhost", "Cookie: a=1", "Cookie: b=2"], ""),
    ok("underscore_header_dropped", &["GET / HTTP/1.1", "Host: localhost", "X_Under: v", "X-Ok: w"], ""),
    ok("header_case_and_spacing", &["GET / HTTP/1.1", "host: localhost", "x-lower: a", "X-UPPER:b", "X-Space:   c  "], ""),
    ok("empty_header_value", &["GET / HTTP/1.1", "Host: localhost", "X-Empty:"], ""),
    ok("utf8_header_value", &["GET / HTTP/1.1", "Host: localhost", "X-Utf8: caf\u{e9}"], ""),
];

/// The request bytes for `case` sent to a proxy on `port`.
fn request_bytes(case: &Case, port: u16) -> Vec<u8> {
    let mut text = case.head.join("\r\n");
    text.push_str("\r\n\r\n");
    text.push_str(case.body);
    text.replace("{PORT}", &port.to_string()).into_bytes()
}

/// What the backend received, normalised for comparison.
#[derive(Debug, PartialEq, Eq)]
struct Forwarded {
    request_line: String,
    /// Raw header lines, sorted; see the module doc.
    headers: Vec<String>,
    body: Vec<u8>,
}

/// What one server did with one request.
#[derive(Debug, PartialEq, Eq)]
struct Observation {
    status: Option<u16>,
    forwarded: Vec<Forwarded>,
    /// Header order as received (not compared; printed on mismatch).
    order: Vec<Vec<String>>,
}

/// Known differences of nginx-rs from nginx 1.22 on this corpus: (case, how it differs).
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// How header names are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameCase {
    Exact,
    Insensitive,
    /// Exact, and in the order received.
    ExactInOrder,
}

fn normalise(received: Received, port: u16, names: NameCase) -> (Forwarded, Vec<String>) {
    let port = port.to_string();
    let fix = |s: &str| {
        let s = s.replace(&port, "{PORT}");
        match (names, s.split_once(':')) {
            (NameCase::Insensitive, Some((name, rest))) => {
                format!("{}:{rest}", name.to_ascii_lowercase())
            }
            _ => s,
        }
    };
    let order = received.headers.iter().map(|(n, _)| n.clone()).collect();
    let head = String::from_utf8_lossy(&received.head);
    let mut headers: Vec<String> = head
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(fix)
        .collect();
    if names != NameCase::ExactInOrder {
        headers.sort();
    }
    let forwarded = Forwarded {
        request_line: received.request_line.replace(&port, "{PORT}"),
        headers,
        body: received.body,
    };
    (forwarded, order)
}

fn observe(server: &Server, backend: &Backend, case: &Case, names: NameCase) -> Observation {
    backend.take_received();
    let ex = exchange(server.addr(), &request_bytes(case, server.port()));
    // The backend records a request before answering it, so everything forwarded for this
    // request is recorded by the time the client has its response.
    let (forwarded, order) = backend
        .take_received()
        .into_iter()
        .map(|r| normalise(r, server.port(), names))
        .unzip();
    Observation {
        status: ex.status(),
        forwarded,
        order,
    }
}

/// Starts `flavor` on the shared config in front of `backend`.
fn start_proxy(flavor: Flavor, backend: &Backend) -> Option<Server> {
    start_proxy_with(flavor, backend, "")
}

/// Same, with `extra` http-level directives appended (for the harness's own checks).
fn start_proxy_with(flavor: Flavor, backend: &Backend, extra: &str) -> Option<Server> {
    let b = backend.port();
    skip_unless(
        start(flavor, Options::default(), &|port| {
            http_config(port, b) + extra
        }),
        flavor,
    )
}

/// Runs the corpus through `a` and `b` and returns every case that differs.
fn compare(a: &Server, b: &Server, backend: &Backend, names: NameCase) -> Vec<Difference> {
    let mut mismatches = Vec::new();
    for case in CORPUS {
        let oa = observe(a, backend, case, names);
        let ob = observe(b, backend, case, names);
        if oa.status != ob.status || oa.forwarded != ob.forwarded {
            mismatches.push(Difference {
                case: case.name.to_string(),
                detail: format!(
                    "case {}:\n  {} got {:?}\n  {} got {:?}",
                    case.name,
                    a.flavor().name(),
                    oa,
                    b.flavor().name(),
                    ob
                ),
            });
        }
    }
    mismatches
}

fn details(found: &[Difference]) -> String {
    found
        .iter()
        .map(|d| d.detail.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn corpus_is_large_enough() {
    assert!(CORPUS.len() >= 40, "issue 3 asks for at least 40 requests");
    let mut names: Vec<_> = CORPUS.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CORPUS.len(), "case names must be unique");
}

#[test]
fn corpus_is_valid_against_nginx() {
    let backend = Backend::echo();
    let Some(nginx) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    let mut wrong = Vec::new();
    for case in CORPUS {
        let seen = observe(&nginx, &backend, case, NameCase::Exact);
        let count = usize::from(case.forwarded);
        if std::env::var_os("DIFF_DUMP").is_some() {
            eprintln!("{}: {:?}", case.name, seen);
        }
        if seen.status != Some(case.nginx_status) || seen.forwarded.len() != count {
            wrong.push(format!(
                "case {}: expected status {} and {} forwarded, nginx gave {:?}",
                case.name, case.nginx_status, count, seen
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases do not do what the corpus says:\n{}\nstderr:\n{}",
        wrong.len(),
        CORPUS.len(),
        wrong.join("\n"),
        nginx.stderr()
    );
}

#[test]
fn nginx_against_nginx_is_identical() {
    let backend = Backend::echo();
    let Some(a) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    let Some(b) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    let mismatches = compare(&a, &b, &backend, NameCase::Exact);
    assert!(
        mismatches.is_empty(),
        "the normalisations do not cover nginx against itself:\n{}",
        details(&mismatches)
    );
}

#[test]
fn comparison_detects_a_header_difference() {
    let backend = Backend::echo();
    let Some(a) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    // Inherited by every location that sets no proxy_set_header of its own.
    let Some(b) = start_proxy_with(Flavor::Nginx, &backend, "proxy_set_header X-Extra 1;") else {
        return;
    };
    let mismatches = compare(&a, &b, &backend, NameCase::Insensitive);
    let cases: Vec<&str> = mismatches.iter().map(|d| d.case.as_str()).collect();
    assert!(
        cases.contains(&"root"),
        "an extra header went unnoticed: {cases:?}"
    );
    assert!(
        !cases.contains(&"walk_plain"),
        "a location with its own proxy_set_header inherits nothing: {cases:?}"
    );
}

#[test]
fn nginx_rs_forwards_like_nginx() {
    let backend = Backend::echo();
    let Some(nginx) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    let Some(rs) = start_proxy(Flavor::NginxRs, &backend) else {
        return;
    };
    let mismatches = compare(&nginx, &rs, &backend, NameCase::Insensitive);
    assert_only_known(
        &mismatches,
        KNOWN_DIFFERENCES,
        &format!("nginx-rs stderr:\n{}", rs.stderr()),
    );
}

#[test]
fn nginx_rs_keeps_header_name_case() {
    let backend = Backend::echo();
    let Some(nginx) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    let Some(rs) = start_proxy(Flavor::NginxRs, &backend) else {
        return;
    };
    let exact: Vec<String> = compare(&nginx, &rs, &backend, NameCase::Exact)
        .into_iter()
        .map(|d| d.case)
        .collect();
    let insensitive: Vec<String> = compare(&nginx, &rs, &backend, NameCase::Insensitive)
        .into_iter()
        .map(|d| d.case)
        .collect();
    let case_only: Vec<&String> = exact.iter().filter(|c| !insensitive.contains(c)).collect();
    assert!(
        case_only.is_empty(),
        "{} cases differ only in header name case: {case_only:?}",
        case_only.len()
    );
}

#[test]
fn nginx_rs_keeps_header_order() {
    let backend = Backend::echo();
    let Some(nginx) = start_proxy(Flavor::Nginx, &backend) else {
        return;
    };
    let Some(rs) = start_proxy(Flavor::NginxRs, &backend) else {
        return;
    };
    let mismatches = compare(&nginx, &rs, &backend, NameCase::ExactInOrder);
    assert!(
        mismatches.is_empty(),
        "{} cases differ in header order or spelling:\n{}",
        mismatches.len(),
        details(&mismatches)
    );
}
